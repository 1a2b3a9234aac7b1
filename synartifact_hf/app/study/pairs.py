"""The two generator-evaluation folders a study compares, paired by item.

``eval-generator`` writes each folder (a Hub-ready image dataset: ``data/*.parquet`` with ``item_id``,
``prompt``, ``prompt_index``, ``seed``, ``image``; ``generation.json``). Two folders are comparable
when they hold the same ``(item_id, prompt, seed)`` triples: the same prompts with the same noise, so
an item shows what each model made of the same start. Anything else is refused with the folder and
what differs.

The images a rater sees are re-encoded from pixels only (no PNG text, no EXIF: a generator's
metadata could name the model) and brought to one size (the smaller of the two), so neither file
nor size tells which side is which model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REQUIRED_COLUMNS", "PairsError", "StudyItem", "StudyPairs", "items_fingerprint"]

REQUIRED_COLUMNS = ("item_id", "prompt", "seed", "image")


class PairsError(ValueError):
    """The two folders cannot be compared (missing, unreadable, or not the same prompts and seeds)."""


@dataclass(frozen=True)
class StudyItem:
    item_id: str
    prompt: str
    prompt_index: int
    seed: int


def items_fingerprint(items) -> str:
    """sha256 of the sorted ``(item_id, prompt, seed)`` triples: what binds a ratings database to its
    folders."""
    rows = sorted((i.item_id, i.prompt, int(i.seed)) for i in items)
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def _describe(folder: Path) -> str:
    """A model's name for the report (never shown to raters): pipeline (+ LoRA) from generation.json."""
    meta_file = folder / "generation.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return folder.name
    if not isinstance(meta, dict) or not meta.get("pipeline"):
        return folder.name
    name = str(meta["pipeline"])
    if meta.get("lora"):
        name += f" + LoRA {Path(str(meta['lora'])).name}"
    return name


def _load(folder: Path, label: str):
    import datasets

    if not folder.is_dir():
        raise PairsError(f"--{label.lower()} {folder}: no such folder (expected an eval-generator output folder)")
    files = sorted(str(p.resolve()) for p in folder.glob("data/*.parquet"))
    if not files:
        raise PairsError(f"--{label.lower()} {folder}: not a readable image dataset folder (no data/*.parquet)")
    try:
        # the parquet files by absolute path, not load_dataset(folder): for a folder whose card maps
        # configs to files, datasets keys its cache on the folder's name and the card, not on the data,
        # so a second folder of the same name (two runs' "eval" folders) would load the first one's rows
        dataset = datasets.load_dataset("parquet", data_files={"train": files}, split="train")
    except Exception as err:  # datasets raises many kinds; the message names the folder either way
        raise PairsError(f"--{label.lower()} {folder}: not a readable image dataset folder ({type(err).__name__}: {err})") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
    if missing:
        raise PairsError(f"--{label.lower()} {folder}: the data has no column(s) {', '.join(missing)} "
                         f"(expected {', '.join(REQUIRED_COLUMNS)}; found {', '.join(dataset.column_names)})")
    if not isinstance(dataset.features["image"], datasets.Image):
        raise PairsError(f"--{label.lower()} {folder}: column 'image' is {dataset.features['image']}, expected an Image")
    return dataset


def _items(dataset, folder: Path, label: str) -> dict[str, tuple[int, StudyItem]]:
    columns = dataset.select_columns([c for c in ("item_id", "prompt", "prompt_index", "seed")
                                      if c in dataset.column_names]).to_dict()
    prompt_numbers: dict[str, int] = {}
    found: dict[str, tuple[int, StudyItem]] = {}
    for row, item_id in enumerate(columns["item_id"]):
        prompt = columns["prompt"][row]
        if not isinstance(item_id, str) or not item_id:
            raise PairsError(f"--{label.lower()} {folder}: row {row} has item_id {item_id!r}, expected a non-empty string")
        if item_id in found:
            raise PairsError(f"--{label.lower()} {folder}: item_id {item_id!r} appears twice (rows {found[item_id][0]} and {row})")
        index = columns["prompt_index"][row] if "prompt_index" in columns else prompt_numbers.setdefault(prompt, len(prompt_numbers))
        found[item_id] = (row, StudyItem(item_id, str(prompt), int(index), int(columns["seed"][row])))
    if not found:
        raise PairsError(f"--{label.lower()} {folder}: the dataset has no rows")
    return found


class StudyPairs:
    """Model A's and model B's images of the same items. ``items`` are in the folders' order;
    ``models`` maps "A"/"B" to a description (report only); ``images(item_id)`` gives ``(a, b)``."""

    def __init__(self, dir_a: str | os.PathLike, dir_b: str | os.PathLike):
        self.folders = {"A": Path(dir_a), "B": Path(dir_b)}
        self._datasets = {label: _load(folder, label) for label, folder in self.folders.items()}
        found = {label: _items(self._datasets[label], self.folders[label], label) for label in ("A", "B")}
        keys = {label: {(i.item_id, i.prompt, i.seed) for _, i in rows.values()} for label, rows in found.items()}
        if keys["A"] != keys["B"]:
            only_a, only_b = sorted(keys["A"] - keys["B"]), sorted(keys["B"] - keys["A"])
            example = (only_a or only_b)[0]
            raise PairsError(
                f"{self.folders['A']} and {self.folders['B']} do not hold the same (item_id, prompt, seed) triples: "
                f"{len(only_a)} only in A, {len(only_b)} only in B (e.g. {example}). A study compares two "
                "eval-generator runs over the same prompts and seeds.")
        self._rows = {label: {item_id: row for item_id, (row, _) in rows.items()} for label, rows in found.items()}
        self.items = [item for _, item in found["A"].values()]
        self.models = {label: _describe(folder) for label, folder in self.folders.items()}
        self.fingerprint = items_fingerprint(self.items)

    def images(self, item_id: str):
        """``(image_a, image_b)``: RGB, metadata-free, the same size."""
        from PIL import Image

        pictures = []
        for label in ("A", "B"):
            with self._datasets[label][self._rows[label][item_id]]["image"] as source:
                source.load()
                pictures.append(Image.frombytes("RGB", source.size, source.convert("RGB").tobytes()))
        size = min(pictures, key=lambda p: p.width * p.height).size
        return tuple(p if p.size == size else p.resize(size, Image.Resampling.LANCZOS) for p in pictures)
