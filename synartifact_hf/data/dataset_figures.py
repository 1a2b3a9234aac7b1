"""Draw a built dataset: artifact overlays (like the release's ``annotation_image/``) and the class
histogram, as PNG files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..drawing import plot_class_distribution, save_artifact_overlays
from ..taxonomy import NO_ARTIFACTS_ID

__all__ = ["visualize_dataset"]


def visualize_dataset(
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    split: str = "test",
    num: int = 8,
    image_ids: list[str] | None = None,
    only_artifacts: bool = False,
) -> list[Path]:
    """Write ``out_dir/<image_id>.png`` overlays for rows of ``split`` and ``out_dir/class_histogram.png``.

    Returns the written paths (overlays first, the histogram last).
    """
    import datasets

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir}: not a folder (pass the OUT_DIR that build-dataset wrote)")
    dataset_dict = datasets.load_dataset(str(dataset_dir), "default")
    if split not in dataset_dict:
        raise KeyError(f"split {split!r} not in {dataset_dir}; available: {', '.join(dataset_dict)}")
    dataset = dataset_dict[split]
    meta = dataset.select_columns(["image_id", "labels"])
    if image_ids:
        wanted = set(image_ids)
        indices = [i for i, image_id in enumerate(meta["image_id"]) if image_id in wanted]
        missing = wanted - {meta[i]["image_id"] for i in indices}
        if missing:
            raise KeyError(f"image id(s) not in split {split!r}: {', '.join(sorted(missing))}")
    else:
        indices = [
            i for i, labels in enumerate(meta["labels"]) if not only_artifacts or labels != [NO_ARTIFACTS_ID]
        ]
        if num:
            indices = indices[:num]
    written = save_artifact_overlays((dataset[i] for i in indices), out_dir)

    names = dataset.features["labels"].feature.names
    counts = {}
    images = {}
    for name, part in dataset_dict.items():
        counter: Counter = Counter()
        for labels in part.select_columns(["labels"])["labels"]:
            counter.update(names[label] for label in set(labels))
        counts[name] = dict(counter)
        images[name] = part.num_rows
    written.append(
        plot_class_distribution(
            counts, Path(out_dir) / "class_histogram.png", title=f"{dataset_dir.name}: images per class", images=images
        )
    )
    return written
