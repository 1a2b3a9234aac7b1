"""The generator-evaluation folder: a Hub-ready image dataset plus the report (the layout is a team
contract; the user-study app reads it).

    DIR/README.md        dataset card (YAML ``configs:`` -> ``data/train-*.parquet``)
    DIR/data/*.parquet   one row per image: item_id, prompt, prompt_index, image_index, seed, image,
                         answer, labels, has_artifacts, other_artifacts, parse_issues, reward, nsfw_flagged
    DIR/generation.json  how the images were made and classified (pipeline, lora, steps, guidance, seed,
                         images_per_prompt, prompts, classifier, instruction_sha256, ...)
    DIR/report.json, DIR/report.md, DIR/per_class_rates.png, DIR/flagged_images.png

``datasets.load_dataset(str(DIR), split="train")`` loads it; :func:`read_eval_folder` reads the settings
and every column except the images (for comparisons).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

__all__ = ["COLUMNS", "features", "MAX_SHEET_IMAGES", "read_eval_folder", "write_eval_folder"]

GENERATION_FILE = "generation.json"
REPORT_FILE = "report.json"
MAX_SHEET_IMAGES = 24
COLUMNS = ("item_id", "prompt", "prompt_index", "image_index", "seed", "image", "answer", "labels", "has_artifacts",
           "other_artifacts", "parse_issues", "reward", "nsfw_flagged")


def features():
    """The columns' ``datasets`` features (built on call: datasets is slow to import)."""
    import datasets

    return datasets.Features({
        "item_id": datasets.Value("string"),
        "prompt": datasets.Value("string"),
        "prompt_index": datasets.Value("int32"),
        "image_index": datasets.Value("int32"),
        "seed": datasets.Value("int64"),
        "image": datasets.Image(),
        "answer": datasets.Value("string"),
        "labels": datasets.List(datasets.Value("string")),
        "has_artifacts": datasets.Value("bool"),
        "other_artifacts": datasets.Value("string"),
        "parse_issues": datasets.List(datasets.Value("string")),
        "reward": datasets.Value("float32"),
        "nsfw_flagged": datasets.Value("bool"),
    })


def _dataset_info(dataset, parquet_bytes: int) -> dict:
    """The card's ``dataset_info`` (features, row count, sizes), as push_to_hub writes it. It also keeps
    ``load_dataset(DIR)`` honest: its cache is keyed on the card's metadata and the file patterns, not on
    the files, so without sizes a new folder of the same name (or an --overwrite) could load stale rows."""
    import datasets

    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo(name="train", num_bytes=dataset.data.nbytes, num_examples=dataset.num_rows))
    info = datasets.DatasetInfo(features=dataset.features, splits=splits, download_size=parquet_bytes,
                                dataset_size=dataset.data.nbytes)
    return info._to_yaml_dict()


def _card(settings: dict, report: dict, files: list[str], dataset_info: dict) -> str:
    from ..hub_folder import package_version, size_category, yaml_block

    header = yaml_block({
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}],
        "dataset_info": dataset_info,
        "tags": ["synartifact", "generated-images", "artifact-evaluation"],
        "size_categories": [size_category(report["images"])],
    })
    rate = report["artifact_rate"]
    rate_text = "n/a" if rate["estimate"] is None else (
        f"{100 * rate['estimate']:.1f}% (95% CI {100 * rate['ci_low']:.1f}-{100 * rate['ci_high']:.1f}%)")
    return f"""---
{header}
---

# Generator evaluation: `{settings['pipeline']}`{f" + LoRA `{settings['lora']}`" if settings.get('lora') else ''}

{report['images']} images ({report['prompts']} prompts x {settings['images_per_prompt']}) drawn with fixed seeds
per (prompt, image index) and labelled by the artifact classifier `{settings['classifier']}` (SynArtifact taxonomy).
Artifact rate: {rate_text}. Every number, per class, is in [report.md](report.md); the settings in
[generation.json](generation.json).

```python
import datasets
ds = datasets.load_dataset("path/to/this/folder", split="train")
```

Columns: `item_id` (`p<prompt index>-i<image index>`), `prompt`, `prompt_index`, `image_index`, `seed`,
`image`, the classifier's `answer`, parsed `labels`, `has_artifacts` (null when the answer named no option),
`other_artifacts`, `parse_issues`, `reward` (paper Eq. 4, BERTScore with all-MiniLM-L6-v2), `nsfw_flagged`
(the pipeline's safety checker, null without one). {len(files)} parquet file(s).

Written by `synartifact-hf eval-generator` (synartifact-hf {package_version()}).
"""


def _sample_flagged(records, k: int, seed: int) -> list[dict]:
    """A seeded uniform sample of at most ``k`` flagged records in item order (reservoir: one pass, k kept)."""
    rng = random.Random(seed)
    kept: list[tuple[int, dict]] = []
    seen = 0
    for record in records:
        if not record["has_artifacts"]:
            continue
        if len(kept) < k:
            kept.append((seen, record))
        else:
            j = rng.randrange(seen + 1)
            if j < k:
                kept[j] = (seen, record)
        seen += 1
    return [record for _, record in sorted(kept, key=lambda pair: pair[0])]


def write_eval_folder(config, settings: dict, work: Path, items) -> Path:
    """Write ``config.output`` from the work folder of a finished run (main process only)."""
    import datasets

    from ..hub_folder import progress_bars, staged_folder, write_parquet_shards
    from ..scaleout import iter_records
    from .figures import contact_sheet, plot_rates
    from .report import count_by_prompt, rate_report, report_markdown
    from .run import IMAGE_DIR, RECORDS

    records_path = work / RECORDS
    images_dir = work / IMAGE_DIR
    expected = len(items)

    def records():
        for _, _, record in iter_records(records_path, "item_id"):
            yield record

    count = sum(1 for _ in records())
    if count != expected:
        raise RuntimeError(f"{records_path} holds {count} records for {expected} items; rerun to finish the missing ones")

    def rows():
        for record in records():
            path = images_dir / f"{record['item_id']}.png"
            yield {**{k: record[k] for k in COLUMNS if k != "image"},
                   "image": {"bytes": path.read_bytes(), "path": path.name}}

    report = rate_report(count_by_prompt(records()), resamples=config.resamples, seed=config.bootstrap_seed)
    flagged = _sample_flagged(records(), MAX_SHEET_IMAGES, config.bootstrap_seed)

    out = Path(config.output)
    with staged_folder(out, overwrite=config.overwrite) as staging:
        with progress_bars(config.progress):
            dataset = datasets.Dataset.from_generator(rows, features=features(),
                                                      cache_dir=os.fspath(staging / ".cache"))
            (staging / "data").mkdir()
            files = write_parquet_shards(dataset, staging / "data", "train")
        info = _dataset_info(dataset, sum((staging / "data" / f).stat().st_size for f in files))
        del dataset
        import shutil

        shutil.rmtree(staging / ".cache", ignore_errors=True)
        generation = {**settings, "num_images": report["images"], "columns": list(COLUMNS)}
        (staging / GENERATION_FILE).write_text(json.dumps(generation, indent=1), encoding="utf-8")
        (staging / REPORT_FILE).write_text(json.dumps(report, indent=1), encoding="utf-8")
        figures = {"per_class_rates.png": "Artifact rate per class with 95% bootstrap intervals over prompts"}
        plot_rates(report, staging / "per_class_rates.png",
                   title=f"{Path(settings['pipeline']).name}{' + LoRA' if settings.get('lora') else ''}: "
                         f"{report['images']} images, {report['prompts']} prompts")
        if flagged:
            from PIL import Image

            def image_of(item):
                with Image.open(images_dir / f"{item}.png") as im:
                    return im.convert("RGB")

            contact_sheet(flagged, image_of, staging / "flagged_images.png")
            figures["flagged_images.png"] = (f"{len(flagged)} flagged image(s) with the classifier's labels"
                                             + (" (a seeded sample)" if report["artifact_rate"]["count"] > len(flagged)
                                                else ""))
        (staging / "report.md").write_text(
            report_markdown(report, settings, figures=figures, toy_note=config.extra.get("toy_note")), encoding="utf-8")
        (staging / "README.md").write_text(_card(settings, report, files, info), encoding="utf-8")
    return out


def read_eval_folder(folder: str | os.PathLike, columns=("item_id", "prompt", "prompt_index", "seed", "labels",
                                                          "has_artifacts", "reward")) -> tuple[dict, dict[str, list]]:
    """``(generation settings, {column: values})`` of an ``eval-generator`` folder, without the images (read
    from the parquet files directly: only the named columns, and no ``datasets`` cache to go stale)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    settings_path = folder / GENERATION_FILE
    if not settings_path.is_file():
        raise SystemExit(f"{folder}: no {GENERATION_FILE}; pass a folder written by `synartifact-hf eval-generator`")
    try:
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SystemExit(f"{settings_path} is not JSON ({err})") from None
    for key in ("classifier", "instruction_sha256"):
        if key not in settings:
            raise SystemExit(f"{settings_path} has no {key!r}; was it written by `synartifact-hf eval-generator`?")
    files = sorted((folder / "data").glob("train-*.parquet"))
    if not files:
        raise SystemExit(f"{folder}: no data/train-*.parquet files")
    tables = []
    for path in files:
        available = pq.read_schema(path).names
        missing = [c for c in columns if c not in available]
        if missing:
            raise SystemExit(f"{path}: no column(s) {missing}; columns: {available}")
        tables.append(pq.read_table(path, columns=list(columns)))
    return settings, {c: [v for t in tables for v in t.column(c).to_pylist()] for c in columns}
