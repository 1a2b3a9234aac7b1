"""Writing a Hub-ready dataset folder: parquet shards under config folders, and a ``README.md`` card
whose YAML ``configs:`` maps each config to its files, so ``load_dataset(folder)`` works locally and
``push-dataset`` publishes the folder as it is.

Used by ``build-dataset`` (:mod:`synartifact_hf.data.export`), ``curate``
(:mod:`synartifact_hf.curation`) and generator evaluation. What every writer shares:

- :func:`check_out_dir` refuses to replace a folder that is not a dataset folder (or, for a build,
  one that overlaps its raw input);
- :func:`staged_folder` gives a temporary sibling to write into and swaps it into place only when the
  ``with`` block succeeds (a failed write leaves nothing behind; leftovers of killed writers are swept,
  see :mod:`synartifact_hf.data.staging`);
- :func:`write_parquet_shards` streams a ``datasets.Dataset`` into size-capped shards with image files
  embedded as bytes;
- :func:`configs_yaml`, :func:`yaml_block`, :func:`size_category` fill the card's metadata.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CARD_FILE",
    "DEFAULT_MAX_SHARD_SIZE",
    "check_out_dir",
    "configs_yaml",
    "package_version",
    "progress_bars",
    "shard_file_name",
    "size_category",
    "staged_folder",
    "write_parquet_shards",
    "yaml_block",
]

CARD_FILE = "README.md"
# Bytes of (image) data per parquet shard: the Hub's viewer and datasets' streaming like shards of a few
# hundred MB.
DEFAULT_MAX_SHARD_SIZE = 500 * 2**20


def shard_file_name(split: str, index: int, count: int) -> str:
    """``train-00000-of-00002.parquet``"""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def check_out_dir(out_dir: str | os.PathLike, overwrite: bool, raw_dir: str | os.PathLike | None = None,
                  looks_like_ours=None) -> None:
    """Refuse to write ``out_dir`` when that would destroy something else.

    Raises ``ValueError`` when ``out_dir`` and ``raw_dir`` (the input, never written to) overlap, and
    ``FileExistsError`` when ``out_dir`` exists and ``overwrite`` is False, or it is not a folder, or it
    holds files but does not look like a dataset folder: ``looks_like_ours(out_dir) -> bool`` when
    given, else "has a README.md card".
    """
    out_dir = Path(out_dir)
    if raw_dir is not None:
        raw, out = Path(raw_dir).resolve(), out_dir.resolve()
        if out == raw or out in raw.parents or raw in out.parents:
            raise ValueError(f"OUT_DIR {out_dir} overlaps the raw release {raw_dir} it is built from; the raw "
                             "folder is never written to")
    if not (out_dir.exists() or out_dir.is_symlink()):
        return
    if not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to replace it")
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder; refusing to replace it")
    ours = looks_like_ours(out_dir) if looks_like_ours is not None else (out_dir / CARD_FILE).is_file()
    if any(out_dir.iterdir()) and not ours:
        raise FileExistsError(f"{out_dir} exists and does not look like a dataset folder written by synartifact-hf "
                              f"(no {CARD_FILE} card); refusing to replace it even with overwrite")


@contextmanager
def staged_folder(out_dir: str | os.PathLike, overwrite: bool = False, *, swept: list | None = None) -> Iterator[Path]:
    """Yield a fresh staging folder next to ``out_dir``; on success it replaces ``out_dir``.

    Before: leftovers of killed writers of ``out_dir`` are swept (removed when provably ours and
    stale, else logged; appended to ``swept`` as :class:`~synartifact_hf.data.staging.StaleFolder`
    when a list is given) and ``out_dir``'s parent is created. On an exception in the block the staging
    folder is removed and ``out_dir`` stays as it was. Call :func:`check_out_dir` first: this only
    refuses an existing ``out_dir`` when ``overwrite`` is False.
    """
    from .data.staging import make_staging, swap_into_place, sweep_stale_staging

    out_dir = Path(out_dir)
    if (out_dir.exists() or out_dir.is_symlink()) and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--overwrite) to replace it")
    found = sweep_stale_staging(out_dir)
    if swept is not None:
        swept.extend(found)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = make_staging(out_dir)
    try:
        yield staging
        swap_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_parquet_shards(dataset, folder: str | os.PathLike, split: str,
                         max_shard_size: int = DEFAULT_MAX_SHARD_SIZE, batch_rows: int = 64) -> list[str]:
    """Write ``dataset`` into ``folder`` as ``<split>-0000i-of-0000N.parquet`` shards, a new shard
    whenever ``max_shard_size`` bytes were written, with image files embedded as bytes (the folder
    stands alone). Streams ``batch_rows`` rows at a time; returns the file names in order."""
    import pyarrow.parquet as pq
    from datasets.table import embed_table_storage

    folder = Path(folder)
    schema = dataset.features.arrow_schema
    written, writer, size = [], None, 0
    try:
        for table in dataset.with_format("arrow").iter(batch_size=batch_rows):
            if writer is None or size >= max_shard_size:
                if writer is not None:
                    writer.close()
                written.append(folder / f".shard-{len(written)}.parquet")
                writer, size = pq.ParquetWriter(str(written[-1]), schema), 0
            table = embed_table_storage(table.cast(schema))
            writer.write_table(table)
            size += table.nbytes
    finally:
        if writer is not None:
            writer.close()
    names = []
    for index, path in enumerate(written):
        name = shard_file_name(split, index, len(written))
        path.rename(folder / name)
        names.append(name)
    return names


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` tag for ``n`` rows.

    >>> size_category(1310)
    '1K<n<10K'
    """
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < bound:
            return name
    return "100K<n<1M"


def configs_yaml(configs: Sequence[str], splits: dict[str, list[str]]) -> str:
    """The card's ``configs:`` list: each config's splits at ``<config>/<split>-*``; the first is the default.

    >>> print(configs_yaml(["default"], {"default": ["train"]}))
    - config_name: default
      default: true
      data_files:
      - split: train
        path: default/train-*
    """
    entries = []
    for i, config in enumerate(configs):
        entry = {"config_name": config}
        if i == 0:
            entry["default"] = True
        entry["data_files"] = [{"split": split, "path": f"{config}/{split}-*"} for split in splits[config]]
        entries.append(entry)
    return yaml_block(entries)


def yaml_block(value) -> str:
    """``value`` as block-style YAML, keys in the given order, no trailing newline."""
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).rstrip("\n")


@contextmanager
def progress_bars(enabled: bool):
    """``datasets``' progress bars on or off inside the block (restored after)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    if not enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            datasets.enable_progress_bars()


def package_version() -> str:
    """The installed synartifact-hf version, or ``"source"`` for a source tree that is not installed
    (cards say which code wrote them; caches key on it)."""
    try:
        from importlib.metadata import version

        return version("synartifact-hf")
    except Exception:  # not installed as a distribution
        return "source"
