"""Export the release to a Hub-ready folder: parquet shards per config and split, a dataset card with
statistics computed from the data, and a class-distribution chart.

Layout of ``OUT_DIR``::

    README.md                                 card; YAML ``configs:`` maps each config to its files
    class_distribution.png                    referenced by the card
    <config>/<split>-00000-of-0000N.parquet   config in default, classification, detection; split in train, test

so ``load_dataset(OUT_DIR)`` and ``load_dataset(OUT_DIR, "classification")`` work locally, and
``push-dataset`` publishes the folder as it is. Everything is written to a temporary sibling folder
and renamed into place at the end: a failed build leaves nothing behind, and an existing ``OUT_DIR``
is replaced only with ``overwrite=True``. A build killed outright (``kill -9``) cannot clean up; the next
build of the same ``OUT_DIR`` removes such leftovers when they are provably its own (see
:mod:`~synartifact_hf.data.staging`) and reports any other.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..cards import render_card, split_front_matter
from ..hub_folder import (
    CARD_FILE,
    DEFAULT_MAX_SHARD_SIZE,
    check_out_dir,
    configs_yaml,
    package_version,
    progress_bars,
    shard_file_name,
    size_category,
    staged_folder,
    yaml_block,
)
from ..paper import CITATION
from ..taxonomy import CLASSES
from .builder import CONFIG_NAMES, HOMEPAGE, SynArtifact1K
from .label_rules import DEFAULT_LABEL_RULE, check_label_rule
from .release import DEFAULT_MAX_IMAGE_PIXELS, Release, ReleaseRecord, SkippedFile, scan_release
from .staging import StaleFolder
from .statistics import DatasetStatistics, compute_statistics

__all__ = [
    "CONFIG_NAMES",
    "CHART_FILE",
    "CARD_FILE",
    "BuildReport",
    "build_dataset",
    "card_statistics",
    "default_row",
    "shard_file_name",
]

logger = logging.getLogger(__name__)

CHART_FILE = "class_distribution.png"
_STATS_START, _STATS_END = "<!-- statistics:start -->", "<!-- statistics:end -->"


@dataclass
class BuildReport:
    """What :func:`build_dataset` wrote."""

    out_dir: Path
    configs: list[str]
    rows: dict[str, dict[str, int]]  # config -> split -> rows
    files: list[str]  # relative to out_dir
    skipped: list[SkippedFile]
    statistics: DatasetStatistics
    label_rule: str = DEFAULT_LABEL_RULE
    stale_folders: list[StaleFolder] = field(default_factory=list)  # leftovers of killed builds (see staging)
    seconds: float = 0.0
    images_per_second: float = 0.0  # release images per second, whole build (all configs)

    def summary(self) -> str:
        lines = [
            f"Wrote {self.out_dir} in {self.seconds:.1f}s: {len(self.configs)} config(s), "
            f"{self.images_per_second:.1f} release images/s end to end"
        ]
        for config, splits in self.rows.items():
            lines.append(f"  {config}: " + ", ".join(f"{split} {n}" for split, n in splits.items()))
        stats = self.statistics
        lines.append(
            f"  label rule {self.label_rule!r}: {stats.total('with_artifacts')} images with artifacts, "
            f"{stats.total('without_artifacts')} without (rule 'boxes': {stats.with_artifacts_under('boxes')}, "
            f"rule 'boxes+caption': {stats.with_artifacts_under('boxes+caption')})"
        )
        for item in self.stale_folders:
            lines.append(f"  stale build folder {item}")
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} file(s):")
            lines.extend(f"    {item}" for item in self.skipped)
        else:
            lines.append("  skipped: none")
        return "\n".join(lines)


def default_row(record: ReleaseRecord, label_rule: str = DEFAULT_LABEL_RULE) -> dict:
    """The ``default`` row of a record without its image (what the statistics count)."""
    return {
        "labels": record.label_ids_under(label_rule),
        "artifacts": [{"bbox": b.bbox, "label": b.label, "caption": b.caption} for b in record.boxes],
        "generator": record.generator,
        "prompt_source": record.prompt_source,
        "width": record.width,
        "height": record.height,
        "other_artifacts_caption": record.other_artifacts_caption,
        "t2i_misalignment_caption": record.t2i_misalignment_caption,
    }


_LABEL_RULE_TEXT = {
    "boxes+caption": 'the classes of the image\'s boxes, plus "Other artifacts" when the other-artifacts '
    "caption is not \"None\" (the paper's counting)",
    "boxes": "the classes of the image's boxes only (the other-artifacts caption stays in "
    "`other_artifacts_caption` but makes no label and is not in the reference answers)",
}


def _class_table() -> str:
    lines = ["| id | class | group | meaning |", "|---:|---|---|---|"]
    for cls in CLASSES:
        lines.append(f"| {cls.id} | {cls.name} | {cls.group} | {cls.explanation} |")
    return "\n".join(lines)


def _looks_built(out_dir: Path) -> bool:
    """A folder a previous build wrote: a card and at least one config folder."""
    return (out_dir / CARD_FILE).is_file() and any((out_dir / c).is_dir() for c in CONFIG_NAMES)


def _write_config(
    config: str,
    raw_dir: Path,
    release: Release,
    staging: Path,
    *,
    num_proc: int | None,
    max_shard_size: int,
    label_rule: str,
) -> tuple[dict[str, int], list[str], dict]:
    builder = SynArtifact1K(
        data_dir=str(raw_dir),
        config_name=config,
        cache_dir=str(staging / ".cache"),
        release=release,
        label_rule=label_rule,
    )
    builder.download_and_prepare(num_proc=num_proc if num_proc and num_proc > 1 else None)
    rows, files = {}, []
    (staging / config).mkdir()
    for split, records in release.records.items():
        if not records:
            continue
        arrow_files = sorted(Path(builder.cache_dir).glob(f"{builder.dataset_name}-{split}*.arrow"))
        image_bytes = sum(r.image_path.stat().st_size for r in records)
        count = max(1, min(len(records), math.ceil(image_bytes / max_shard_size)))
        names = [f"{config}/{shard_file_name(split, index, count)}" for index in range(count)]
        rows[split] = _arrow_to_parquet(arrow_files, [staging / name for name in names], len(records))
        files.extend(names)
    info = _dataset_info(config, builder, staging, files)
    del builder
    shutil.rmtree(staging / ".cache", ignore_errors=True)
    return rows, files, info


def _arrow_to_parquet(arrow_files: list[Path], outputs: list[Path], num_rows: int) -> int:
    """Copy the builder's Arrow cache into ``len(outputs)`` contiguous parquet shards, one record batch
    at a time (read from the stream, not memory-mapped), so memory holds one batch of images however
    large the split is. Each batch becomes one row group; the schema keeps datasets' features."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_shard = math.ceil(num_rows / len(outputs))
    writer, shard, in_shard, written = None, -1, per_shard, 0

    def batches():
        for path in arrow_files:
            with pa.OSFile(str(path)) as source:
                yield from pa.ipc.open_stream(source)

    try:
        for batch in batches():
            while batch.num_rows:
                if in_shard == per_shard:
                    if writer is not None:
                        writer.close()
                    shard, in_shard = shard + 1, 0
                    writer = pq.ParquetWriter(str(outputs[shard]), batch.schema)
                take = min(batch.num_rows, per_shard - in_shard)
                writer.write_batch(batch.slice(0, take))
                in_shard, written = in_shard + take, written + take
                batch = batch.slice(take)
    finally:
        if writer is not None:
            writer.close()
    if written != num_rows or shard != len(outputs) - 1:
        raise RuntimeError(f"wrote {written} rows in {shard + 1} shard(s), expected {num_rows} in {len(outputs)}")
    return written


def _dataset_info(config: str, builder, staging: Path, files: list[str]) -> dict:
    """The card's ``dataset_info`` entry of a config (features, splits, sizes), as push_to_hub writes it.

    Besides documenting the schema, it matters for local loading: ``load_dataset(folder)`` keys its
    cache on the card's metadata and the data-file *patterns*, not on the files' contents, so without
    sizes and row counts here a rebuilt folder of the same name could be served from a stale cache.
    """
    import datasets

    splits = datasets.SplitDict()
    for split in builder.info.splits.values():
        splits.add(datasets.SplitInfo(name=split.name, num_bytes=split.num_bytes, num_examples=split.num_examples))
    info = datasets.DatasetInfo(
        features=builder.info.features,
        splits=splits,
        download_size=sum((staging / f).stat().st_size for f in files),
        dataset_size=sum(split.num_bytes for split in splits.values()),
        config_name=config,
    )
    return info._to_yaml_dict()


def _verify_parquet(staging: Path, files: list[str], rows: dict[str, dict[str, int]]) -> None:
    # Cheap end-to-end check before the folder goes live: row counts in the parquet footers.
    import pyarrow.parquet as pq

    found: Counter = Counter()
    for name in files:
        config, file = name.split("/")
        found[(config, file.split("-")[0])] += pq.ParquetFile(staging / name).metadata.num_rows
    for config, splits in rows.items():
        for split, n in splits.items():
            if found[(config, split)] != n:
                raise RuntimeError(f"{config}/{split}: parquet holds {found[(config, split)]} rows, expected {n}")


def _render_dataset_card(
    out_name: str,
    configs: Sequence[str],
    split_names: dict[str, list[str]],
    infos: list[dict],
    stats: DatasetStatistics,
    skipped: list[SkippedFile],
    pretty_name: str,
    label_rule: str,
) -> str:
    from .. import __name__ as package_name

    version = package_version()
    build_note = package_name if version == "source" else f"{package_name} {version}"
    skipped_note = (
        f"**{len(skipped)} file(s) of the release were left out** by `--skip-invalid`: "
        + "; ".join(f"`{s.path}`" for s in skipped[:50])
        + (" ..." if len(skipped) > 50 else "")
        + "."
        if skipped
        else "No file of the release was left out."
    )
    card = render_card(
        "dataset_card.md",
        pretty_name=pretty_name,
        size_category=size_category(stats.total("images")),
        configs_yaml=configs_yaml(configs, split_names),
        dataset_info_yaml=yaml_block(infos),
        homepage=HOMEPAGE,
        build_note=build_note,
        skipped_note=skipped_note,
        configs_present=", ".join(f"`{c}`" for c in configs),
        load_path=out_name,
        label_rule=label_rule,
        label_rule_text=_LABEL_RULE_TEXT[label_rule],
        label_rule_table=stats.label_rule_table(label_rule),
        with_artifacts=stats.total("with_artifacts"),
        without_artifacts=stats.total("without_artifacts"),
        class_table=_class_table(),
        chart_file=CHART_FILE,
        statistics=stats.to_markdown(),
        citation=CITATION,
    )
    import yaml

    meta = yaml.safe_load(split_front_matter(card)[0])
    if [c["config_name"] for c in meta["configs"]] != list(configs) or len(meta["dataset_info"]) != len(configs):
        raise RuntimeError("rendered card lost its configs / dataset_info metadata")
    return card


def build_dataset(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    configs: Sequence[str] = CONFIG_NAMES,
    num_proc: int | None = None,
    overwrite: bool = False,
    skip_invalid: bool = False,
    verify_images: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    pretty_name: str = "SynArtifact-1K",
    progress: bool = True,
    label_rule: str = DEFAULT_LABEL_RULE,
) -> BuildReport:
    """Validate the release in ``raw_dir`` and write the Hub-ready folder ``out_dir``.

    Args:
        raw_dir: the release's ``data/`` folder (``train.txt``, ``eval.txt``, ``sub_data_N/``).
        out_dir: the folder to create (its name is what ``load_dataset`` takes, e.g. ``synartifact-1k``).
        configs: which of ``default``, ``classification``, ``detection`` to write; the first is the
            card's default config.
        num_proc: processes for validation and generation.
        overwrite: replace an existing ``out_dir`` (only one that a previous build wrote).
        skip_invalid: leave out bad images (listed in the report and the card) instead of failing.
        verify_images / max_image_pixels: see :func:`~synartifact_hf.data.release.scan_release`.
        max_shard_size: target bytes of image data per parquet file.
        pretty_name: title of the card.
        progress: show progress bars.
        label_rule: what makes ``labels`` / ``has_artifacts``: ``"boxes+caption"`` (default) or
            ``"boxes"`` (the paper's counts); see :mod:`~synartifact_hf.data.label_rules`.
    """
    start = time.perf_counter()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    configs = _check_configs(configs)
    check_label_rule(label_rule)
    check_out_dir(out_dir, overwrite, raw_dir=raw_dir, looks_like_ours=_looks_built)

    release = scan_release(
        raw_dir,
        skip_invalid=skip_invalid,
        verify_images=verify_images,
        max_image_pixels=max_image_pixels,
        num_proc=num_proc,
        progress=progress,
    )
    stats = compute_statistics(
        {split: [default_row(r, label_rule) for r in recs] for split, recs in release.records.items() if recs}
    )

    stale: list[StaleFolder] = []
    with staged_folder(out_dir, overwrite=overwrite, swept=stale) as staging:
        with progress_bars(progress):
            rows, files, infos = _write_configs(configs, raw_dir, release, staging, num_proc=num_proc,
                                                max_shard_size=max_shard_size, label_rule=label_rule)
        _verify_parquet(staging, files, rows)
        _write_chart(staging / CHART_FILE, stats, pretty_name, label_rule)
        split_names = {config: list(rows[config]) for config in configs}
        card = _render_dataset_card(
            out_dir.name, configs, split_names, infos, stats, release.skipped, pretty_name, label_rule
        )
        (staging / CARD_FILE).write_text(card, encoding="utf-8")

    seconds = time.perf_counter() - start
    return BuildReport(
        out_dir=out_dir,
        configs=configs,
        rows=rows,
        files=sorted([CARD_FILE, CHART_FILE, *files]),
        skipped=list(release.skipped),
        statistics=stats,
        label_rule=label_rule,
        stale_folders=stale,
        seconds=seconds,
        images_per_second=release.num_records / seconds if seconds else 0.0,
    )


def _check_configs(configs: Sequence[str]) -> list[str]:
    configs = list(dict.fromkeys(configs))
    unknown = [c for c in configs if c not in CONFIG_NAMES]
    if not configs or unknown:
        raise ValueError(f"configs must be a non-empty subset of {', '.join(CONFIG_NAMES)}; got {configs}")
    return configs


def _write_configs(configs: list[str], raw_dir: Path, release: Release, staging: Path, **options):
    """Every config's parquet shards: ``(rows per config and split, files, dataset_info entries)``."""
    rows: dict[str, dict[str, int]] = {}
    files: list[str] = []
    infos: list[dict] = []
    for config in configs:
        rows[config], config_files, info = _write_config(config, raw_dir, release, staging, **options)
        files.extend(config_files)
        infos.append(info)
    return rows, files, infos


def _write_chart(path: Path, stats: DatasetStatistics, pretty_name: str, label_rule: str) -> None:
    from ..viz import plot_class_distribution

    plot_class_distribution(
        {split: dict(stats.images_per_class[split]) for split in stats.splits},
        path,
        title=f"{pretty_name}: images per class (label rule {label_rule!r})",
        images=stats.images,
    )


def card_statistics(out_dir: str | Path) -> str:
    """The statistics section of a built folder's card (Markdown), as the card shows it."""
    card_path = Path(out_dir) / CARD_FILE
    text = card_path.read_text(encoding="utf-8")
    start, end = text.find(_STATS_START), text.find(_STATS_END)
    if start < 0 or end < 0:
        raise ValueError(f"{card_path} has no statistics section ({_STATS_START} ... {_STATS_END})")
    return text[start + len(_STATS_START) : end].strip()

