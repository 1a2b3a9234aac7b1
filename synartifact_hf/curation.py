"""Curation: label a dataset with an artifact classifier, keep the clean (or the flagged) images, and
write the result as a Hub-ready dataset folder.

"Remove the images with artifacts from my generated training set"::

    synartifact-hf curate generated/ --model my-classifier --keep clean --output-dir generated-clean

In Python, :func:`label_dataset` adds the classifier's answer as columns to a ``datasets.Dataset`` or
``IterableDataset``:

- ``answer`` (the raw answer), ``labels`` (taxonomy names), ``has_artifacts`` (True / False; None when
  the answer named no option), ``other_artifacts`` (the "Other artifacts:" caption), ``parse_issues``,
  ``error`` (why an image could not be read; None otherwise) and, with ``return_scores=True``,
  ``scores``: the 14 option probabilities (a struct keyed by class name).

A ``Dataset`` is labelled with ``Dataset.map(batched=True)`` in chunks of ``rows_per_cache_file`` rows,
each cached by datasets in its own Arrow file whose name depends on the data, the classifier and the
settings: a rerun after a crash loads the finished chunks from the cache and only computes the rest.
Under ``accelerate launch`` / ``torchrun`` each process labels its contiguous share of the chunks
(:func:`synartifact_hf.scaleout.share`) and every process then returns the whole labelled dataset,
in row order, read back from the chunk files (``cache_dir`` must be visible to all processes). Chunk
boundaries do not depend on the number of processes, so a rerun with another number of processes
reuses the same files. An ``IterableDataset`` is labelled lazily, each process its own
``datasets.distributed.split_dataset_by_node`` shard (iterable datasets have no cache).

:func:`keep_rows` filters: ``clean`` = the answer parsed and names no artifact; ``flagged`` = it
names at least one; ``all``. Unparsed answers and unreadable images are neither clean nor flagged;
:func:`count_rows` counts them, and :func:`write_curated_folder` puts the counts in the card.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .hub_folder import DEFAULT_MAX_SHARD_SIZE

# Re-exported: load_images (an image folder -> Dataset) was public here before it moved to image_sources.
from .image_sources import load_images

__all__ = [
    "KEEP_CHOICES",
    "count_rows",
    "keep_rows",
    "label_columns",
    "label_dataset",
    "load_images",
    "write_curated_folder",
]

KEEP_CHOICES = ("all", "clean", "flagged")
DEFAULT_ROWS_PER_CACHE_FILE = 1024
_COLUMNS = ("answer", "labels", "has_artifacts", "other_artifacts", "parse_issues", "error")


def label_columns(return_scores: bool = False, prefix: str = ""):
    """The ``datasets.Features`` of the columns :func:`label_dataset` adds."""
    from datasets import Features, List, Value

    from .taxonomy import NAMES

    features = {
        "answer": Value("string"),
        "labels": List(Value("string")),
        "has_artifacts": Value("bool"),
        "other_artifacts": Value("string"),
        "parse_issues": List(Value("string")),
        "error": Value("string"),
    }
    if return_scores:
        features["scores"] = {name: Value("float32") for name in NAMES}
    return Features({prefix + name: feature for name, feature in features.items()})


def _labeller(classifier, return_scores: bool, prefix: str):
    from .images import MAX_IMAGE_PIXELS, load_image

    def label(images: list) -> dict:
        rows = {prefix + name: [] for name in _COLUMNS}
        if return_scores:
            rows[prefix + "scores"] = []
        readable, pils = [], []
        errors: dict[int, str] = {}
        for i, value in enumerate(images):
            if isinstance(value, list):  # e.g. the `images` column of the classification config
                value = value[0] if value else None
            try:
                if value is None:
                    raise ValueError("the row has no image")
                pils.append(load_image(value, max_pixels=MAX_IMAGE_PIXELS))
                readable.append(i)
            except Exception as err:  # one unreadable image becomes that row's error, not a crash
                errors[i] = f"{type(err).__name__}: {err}"
        # A served classifier still failing after its retries raises: this chunk is not cached, a rerun redoes it.
        results = dict(zip(readable, classifier.classify(pils))) if pils else {}
        for i in range(len(images)):
            result = results.get(i, {})
            rows[prefix + "answer"].append(result.get("generated_text"))
            rows[prefix + "labels"].append(list(result.get("labels", [])))
            rows[prefix + "has_artifacts"].append(result.get("has_artifacts"))
            rows[prefix + "other_artifacts"].append(result.get("other_artifacts"))
            rows[prefix + "parse_issues"].append(list(result.get("parse_issues", [])))
            rows[prefix + "error"].append(errors.get(i))
            if return_scores:
                rows[prefix + "scores"].append(result.get("scores"))
        label.on_batch(len(images))
        return rows

    label.on_batch = lambda n: None
    return label


def label_dataset(
    dataset,
    classifier,
    *,
    image_column: str = "image",
    batch_size: int = 8,
    max_new_tokens: int = 128,
    instruction: str | None = None,
    return_scores: bool = False,
    column_prefix: str = "",
    cache_dir: str | os.PathLike | None = None,
    rows_per_cache_file: int = DEFAULT_ROWS_PER_CACHE_FILE,
    progress: bool = True,
    served_model: str | None = None,
    concurrency: int = 16,
):
    """``dataset`` with the classifier's artifact columns added (see the module docstring).

    Args:
        dataset: a ``datasets.Dataset`` or ``IterableDataset`` with an image column, or an image folder.
        classifier: a ``pipeline("artifact-classification")`` (e.g. from
            :func:`~synartifact_hf.pipeline.load_pipeline`), a checkpoint folder or Hub id, the URL of an
            OpenAI-compatible server ending in ``/v1`` (``served_model`` picks its model, ``concurrency``
            the requests in flight), or a classifier from :func:`~synartifact_hf.backends.open_classifier`
            (whose own ``max_new_tokens``, ``instruction``, ``return_scores`` and batch size then apply).
        image_column: the column holding the image (a list column uses its first image).
        column_prefix: prepended to the new column names (e.g. ``"predicted_"`` for a dataset that has
            its own ``labels``).
        cache_dir: where the labelled chunks are cached; default: next to the dataset's own cache files,
            else ``<HF_DATASETS_CACHE>/synartifact_labels``.
        rows_per_cache_file: rows per cached chunk: what a crash can lose at most per process.
    """
    import datasets

    from .backends import ClassifierBackend, open_classifier
    from .hub_folder import package_version, progress_bars
    from .scaleout import process_state, share

    if isinstance(dataset, (str, os.PathLike)):
        dataset = load_images(dataset)
    if batch_size < 1 or rows_per_cache_file < 1:
        raise ValueError("batch_size and rows_per_cache_file must be at least 1")
    if not isinstance(classifier, ClassifierBackend):
        classifier = open_classifier(classifier, served_model=served_model, batch_size=batch_size,
                                     max_new_tokens=max_new_tokens, instruction=instruction,
                                     return_scores=return_scores, concurrency=concurrency)
    return_scores = classifier.return_scores
    batch_size = classifier.batch_size
    label = _labeller(classifier, return_scores, column_prefix)
    features = label_columns(return_scores, column_prefix)
    state = process_state()

    columns = dataset.column_names or []
    if columns and image_column not in columns:
        raise ValueError(f"the dataset has no {image_column!r} column (columns: {columns}); pass image_column=")
    clash = sorted(set(columns) & set(features))
    if clash:
        raise ValueError(f"the dataset already has the column(s) {clash}; pass column_prefix='predicted_' (or another)")
    image_feature = (dataset.features or {}).get(image_column)
    # Undecoded images reach the labeller, so a broken file becomes that row's error, not a crash.
    undecoded = isinstance(image_feature, datasets.Image) and image_feature.decode

    if isinstance(dataset, datasets.IterableDataset):
        if state.num_processes > 1:
            from datasets.distributed import split_dataset_by_node

            dataset = split_dataset_by_node(dataset, rank=state.process_index, world_size=state.num_processes)
        source = dataset.cast_column(image_column, datasets.Image(decode=False)) if undecoded else dataset
        labelled = source.map(label, batched=True, batch_size=batch_size, input_columns=[image_column], features=
                              datasets.Features({**source.features, **features}) if source.features else None)
        return labelled.cast_column(image_column, image_feature) if undecoded else labelled

    source = dataset.select_columns([image_column])
    if undecoded:
        source = source.cast_column(image_column, datasets.Image(decode=False))
    if cache_dir is None:
        cache_dir = (Path(dataset.cache_files[0]["filename"]).parent if dataset.cache_files
                     else Path(datasets.config.HF_DATASETS_CACHE) / "synartifact_labels")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = json.dumps([dataset._fingerprint, image_column, classifier.fingerprint, column_prefix,
                      package_version()], sort_keys=True, default=str)
    bounds = [(start, min(start + rows_per_cache_file, len(dataset))) for start in range(0, len(dataset), rows_per_cache_file)]

    def chunk(start: int, stop: int):
        fingerprint = hashlib.sha256(f"{key}|{start}|{stop}".encode()).hexdigest()[:16]
        return source.select(range(start, stop)).map(
            label, batched=True, batch_size=batch_size, input_columns=[image_column], remove_columns=[image_column],
            features=features, new_fingerprint=fingerprint, load_from_cache_file=True,
            cache_file_name=str(cache_dir / f"synartifact-labels-{fingerprint}.arrow"),
        )

    from tqdm.auto import tqdm

    mine = [bounds[i] for i in share(len(bounds), state.process_index, state.num_processes)]
    # One bar on the main process over its rows (datasets' own bars would be one per chunk).
    bar = tqdm(total=sum(stop - start for start, stop in mine), desc="label", unit="img",
               disable=not (progress and state.is_main_process))
    label.on_batch = bar.update
    with progress_bars(False):
        done = 0
        for start, stop in mine:
            chunk(start, stop)
            done += stop - start
            bar.update(done - bar.n)  # a chunk read from the cache counts too
        bar.close()
        state.wait_for_everyone()
        # Every chunk is on disk now; map finds each one's cache file and computes nothing.
        parts = [chunk(start, stop) for start, stop in bounds]
    labels = datasets.concatenate_datasets(parts) if parts else datasets.Dataset.from_dict({}, features=features)
    return datasets.concatenate_datasets([dataset, labels], axis=1)


def _flags(labelled, prefix: str):
    import pyarrow.compute as pc

    table = labelled.select_columns([prefix + "has_artifacts", prefix + "error"]).with_format("arrow")[:]
    has = table.column(prefix + "has_artifacts")
    error = pc.is_valid(table.column(prefix + "error"))
    clean = pc.and_(pc.equal(pc.fill_null(has, True), False), pc.invert(error))
    flagged = pc.and_(pc.fill_null(has, False), pc.invert(error))
    return clean, flagged, error


def count_rows(labelled, column_prefix: str = "") -> dict:
    """``total``, ``clean``, ``flagged``, ``unparsed`` (answer named no option), ``errors`` (unreadable
    image) and ``labels`` (rows per predicted label) of a labelled ``Dataset``."""
    from collections import Counter

    import pyarrow.compute as pc

    clean, flagged, error = _flags(labelled, column_prefix)
    total = len(labelled)
    counts = {
        "total": total,
        "clean": int(pc.sum(clean).as_py() or 0),
        "flagged": int(pc.sum(flagged).as_py() or 0),
        "errors": int(pc.sum(error).as_py() or 0),
    }
    counts["unparsed"] = total - counts["clean"] - counts["flagged"] - counts["errors"]
    labels = Counter(label for row in labelled[column_prefix + "labels"] for label in row)
    counts["labels"] = dict(labels.most_common())
    return counts


def keep_rows(labelled, keep: str = "clean", column_prefix: str = ""):
    """The rows to keep: ``clean`` (parsed, no artifact), ``flagged`` (any artifact) or ``all`` (every
    readable image: an unreadable one would break whoever loads the folder)."""
    import numpy as np

    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_CHOICES)}; got {keep!r}")
    import pyarrow.compute as pc

    clean, flagged, error = _flags(labelled, column_prefix)
    mask = {"clean": clean, "flagged": flagged, "all": pc.invert(error)}[keep].to_numpy(zero_copy_only=False)
    return labelled.select(np.flatnonzero(mask))


# ----------------------------------------------------------------------------------------------
# The Hub-ready folder


def write_curated_folder(
    dataset,
    out_dir: str | os.PathLike,
    *,
    classifier_name: str,
    instruction: str | None,
    counts: dict,
    keep: str,
    source: str,
    split: str = "train",
    column_prefix: str = "",
    overwrite: bool = False,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
) -> list[str]:
    """Write ``dataset`` (the kept rows) as ``out_dir/default/<split>-*.parquet`` plus a card naming the
    classifier, the instruction and ``counts``; ``load_dataset(out_dir)`` reads it back and
    ``push-dataset`` / :func:`~synartifact_hf.data.hub.push_dataset` publishes it. Written to a
    temporary sibling and renamed into place. Returns the written files (relative paths)."""
    import datasets

    from .cards import render_card
    from .hub_folder import (
        check_out_dir,
        configs_yaml,
        size_category,
        staged_folder,
        write_parquet_shards,
        yaml_block,
    )
    from .paper import CITATION
    from .prompts import classification_instruction
    from .taxonomy import NAMES

    out_dir = Path(out_dir)
    if len(dataset) == 0:  # datasets cannot load a split without rows
        raise ValueError(f"no row to write to {out_dir} (--keep {keep} kept none of {counts['total']})")
    check_out_dir(out_dir, overwrite)
    with staged_folder(out_dir, overwrite=overwrite) as staging:
        (staging / "default").mkdir()
        names = write_parquet_shards(dataset, staging / "default", split, max_shard_size)
        files = [f"default/{name}" for name in names]
        splits = datasets.SplitDict()
        splits.add(datasets.SplitInfo(name=split, num_examples=len(dataset)))
        info = datasets.DatasetInfo(features=dataset.features, splits=splits, config_name="default",
                                    download_size=sum((staging / f).stat().st_size for f in files))
        label_rows = "\n".join(f"| {name} | {counts['labels'].get(name, 0)} |" for name in NAMES)
        card = render_card(
            "curated_dataset_card.md",
            pretty_name=f"{out_dir.name} (curated with synartifact-hf)",
            size_category=size_category(len(dataset)),
            configs_yaml=configs_yaml(["default"], {"default": [split]}),
            dataset_info_yaml=yaml_block([info._to_yaml_dict()]),
            source=source,
            classifier=classifier_name,
            instruction=(instruction or classification_instruction()).replace("```", "'''"),
            keep=keep,
            kept=len(dataset),
            total=counts["total"], clean=counts["clean"], flagged=counts["flagged"],
            unparsed=counts["unparsed"], errors=counts["errors"],
            label_rows=label_rows,
            citation=CITATION,
            prefix=column_prefix,
            load_path=out_dir.name,
            split=split,
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
    return sorted(["README.md", *files])
