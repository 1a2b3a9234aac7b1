"""Where images come from: files, folders of files, built dataset folders (parquet shards with an
``image`` column) and ``datasets`` objects.

``classify``, curation and the app find their images here, so every command treats a folder the same
way: searched recursively, image files by extension (:data:`IMAGE_EXTENSIONS`), in a stable order, and a
symlink leading outside the folder is skipped (logged), never followed. Turning one found source into
pixels is :mod:`synartifact_hf.images`' job (:func:`read_source` hands it over).

Errors are exceptions (``FileNotFoundError`` for a path that does not exist, ``ValueError`` for a
dataset folder without the asked split or an ``image`` column); the command line turns them into
messages and exit codes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetRow",
    "collect_items",
    "image_files",
    "is_dataset_folder",
    "load_images",
    "read_source",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class DatasetRow:
    """Row ``index`` of a ``datasets.Dataset`` whose ``image`` column is undecoded (``{"bytes", "path"}``):
    reading it is deferred to :func:`read_source`, so a broken image fails that row only."""

    dataset: object
    index: int


def is_dataset_folder(folder: str | os.PathLike) -> bool:
    """A built dataset folder (``build-dataset``, ``curate``): parquet files at its top or one level down."""
    folder = Path(folder)
    return any(folder.glob("*.parquet")) or any(folder.glob("*/*.parquet"))


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` (recursive, sorted; symlinks leading outside it are skipped)."""
    root = Path(folder).resolve()
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            if not path.resolve().is_relative_to(root):
                logger.warning("skipping %s: links outside %s", path, root)
                continue
            found.append(path)
    return found


def _dataset_items(folder: Path, config: str | None, splits: list[str] | None) -> Iterator[tuple[str, DatasetRow]]:
    import datasets

    loaded = datasets.load_dataset(str(folder), name=config)
    chosen = splits or list(loaded)
    missing = [s for s in chosen if s not in loaded]
    if missing:
        raise ValueError(f"{folder}: no split(s) {missing}; available: {list(loaded)}")
    config_name = config or loaded[chosen[0]].config_name or "default"
    for split in chosen:
        dataset = loaded[split]
        if "image" not in dataset.column_names:
            raise ValueError(f"{folder} ({config_name}/{split}) has no 'image' column; columns: {dataset.column_names}")
        # Undecoded ({"bytes", "path"}): a broken image becomes that row's error record, not a crash.
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
        ids = dataset["image_id"] if "image_id" in dataset.column_names else range(len(dataset))
        for index, image_id in enumerate(ids):
            yield f"{folder.resolve()}::{config_name}/{split}/{image_id}", DatasetRow(dataset, index)


def collect_items(paths, config: str | None = None, splits: list[str] | None = None) -> list[tuple[str, object]]:
    """``[(key, source)]`` for every image under ``paths`` (files, folders, built dataset folders), in a
    stable order; the same image named twice appears once.

    Keys are absolute paths for files and ``<folder>::<config>/<split>/<image_id>`` for dataset rows;
    a source is a ``Path`` or a :class:`DatasetRow`, read with :func:`read_source`.
    """
    items: list[tuple[str, object]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if is_dataset_folder(path):
                items.extend(_dataset_items(path, config, splits))
            else:
                items.extend((str(p.resolve()), p) for p in image_files(path))
        elif path.is_file():
            items.append((str(path.resolve()), path))
        else:
            raise FileNotFoundError(f"{raw}: no such file or folder")
    return list(dict(items).items())


def read_source(source, max_pixels: int | None = None):
    """The RGB ``PIL.Image`` of a source from :func:`collect_items` (or anything
    :func:`~synartifact_hf.images.load_image` takes), capped at ``max_pixels``."""
    from .images import MAX_IMAGE_PIXELS, load_image

    if isinstance(source, DatasetRow):
        source = source.dataset[source.index]["image"]
    return load_image(source, max_pixels=MAX_IMAGE_PIXELS if max_pixels is None else max_pixels)


def load_images(folder: str | os.PathLike):
    """A ``datasets.Dataset`` of the image files under ``folder`` (as :func:`image_files` finds them):
    ``image`` and ``file_name`` (relative to ``folder``), in a stable order."""
    from datasets import Dataset, Image

    root = Path(folder).resolve()
    paths = image_files(root)
    if not paths:
        raise ValueError(f"{folder}: no image files found")
    return Dataset.from_dict({
        "image": [str(p) for p in paths],
        "file_name": [p.relative_to(root).as_posix() for p in paths],
    }).cast_column("image", Image())
