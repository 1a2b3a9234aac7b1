"""Evaluate an artifact classifier on the test split: Table-2-style report, figures, detection IoU.

``evaluate_checkpoint(model, dataset)`` runs ``pipeline("artifact-classification")`` over a split of a
built SynArtifact-1K folder (its ``classification`` or ``detection`` config), parses every answer,
scores the labels with ``artifact_f1`` (and, for detection, the boxes with ``artifact_iou``), and writes:

- ``report.md``: the Table 2 layout: an "All" row (example-based accuracy = mean Jaccard, precision,
  recall, F1; the metric's definitions) and one row per class (Jaccard TP/(TP+FP+FN), precision,
  recall, F1, support), with the paper's numbers beside ours where the paper gives them (only its "All"
  rows are transcribed here: ``PAPER_TABLE2``), then every Table 2 row of the paper for reference;
- ``report.json``: the same numbers plus the run's settings;
- ``predictions.jsonl``: one line per image (image_id, reference labels, predicted labels, raw answer,
  parse issues; boxes for detection);
- ``per_class_scores.png`` (precision/recall/F1 per class) and ``label_cooccurrence.png`` (reference
  class vs predicted classes: the multi-label confusion picture);
- for detection, ``detection_boxes.png``: predicted boxes (yellow) vs ground truth (green), like the
  paper's Figure 7.

Scores are fractions 0-1 in ``report.json`` and percentages in ``report.md`` (as in the paper). The
zero-shot baseline is the same call on an un-tuned checkpoint (e.g. ``llava-hf/llava-1.5-7b-hf``).
Ground-truth boxes for detection come from the reference answers of the detection config (the boxes the
formatter wrote, normalized to the 336x336 padded square), so the comparison is in the same units as the
model's answers.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_text_atomic

__all__ = [
    "PAPER_TABLE2",
    "TABLE2_KEYS",
    "EvaluationReport",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "format_table2",
    "score_boxes",
    "write_report",
]

TABLE2_KEYS = ("accuracy", "precision", "recall", "f1")
DEFAULT_MAX_NEW_TOKENS = {"classification": 128, "detection": 256}

# The paper's Table 2, "All" rows (test split, 265 images), in %.
PAPER_TABLE2: dict[str, dict] = {
    "baseline_llava15": {
        "title": "Vanilla LLaVA-1.5 (LLaVA-v1.5-mix665K, Stage 1 init, LLM updated)",
        "accuracy": 20.00, "precision": 25.28, "recall": 22.14, "f1": 23.01,
    },
    "stage1_llm_frozen": {
        "title": "SynArtifact-1K, Stage 1 init, LLM frozen",
        "accuracy": 45.66, "precision": 54.40, "recall": 51.84, "f1": 52.02,
    },
    "stage1_llm_updated": {
        "title": "SynArtifact-1K, Stage 1 init, LLM updated",
        "accuracy": 36.23, "precision": 48.87, "recall": 47.30, "f1": 46.50,
    },
    "stage2_llm_frozen": {
        "title": "SynArtifact-1K, Stage 2 init, LLM frozen",
        "accuracy": 34.34, "precision": 39.87, "recall": 42.30, "f1": 40.10,
    },
}


@dataclass
class EvaluationReport:
    """What :func:`evaluate_checkpoint` measured. Scores are fractions 0-1."""

    model: str
    dataset: str
    config: str
    split: str
    num_examples: int
    metrics: dict
    predictions: list[dict] = field(default_factory=list)
    paper_row: str | None = None
    detection: dict | None = None
    settings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    @property
    def paper(self) -> dict | None:
        return PAPER_TABLE2.get(self.paper_row) if self.paper_row else None

    def summary(self) -> dict[str, float]:
        """The "All" row: accuracy, precision, recall, F1 (fractions)."""
        return {key: float(self.metrics[key]) for key in TABLE2_KEYS}

    def to_dict(self) -> dict:
        return {
            "model": self.model, "dataset": self.dataset, "config": self.config, "split": self.split,
            "num_examples": self.num_examples, "paper_row": self.paper_row, "paper": self.paper,
            "metrics": self.metrics, "detection": self.detection, "settings": self.settings,
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Evaluation of `{self.model}`",
            "",
            f"Dataset `{self.dataset}` (config `{self.config}`, split `{self.split}`, {self.num_examples} images). "
            "Scores in %. The All row is example-based (per-image scores averaged over images; accuracy = "
            "|P∩R|/|P∪R|); class rows report the class's Jaccard TP/(TP+FP+FN) as accuracy, and – for a class "
            "that is neither in the references nor predicted. "
            f"{_empty_rate_sentence(self.metrics)}",
            "",
            format_table2(self.metrics, paper_row=self.paper_row),
            "",
            "## The paper's Table 2 (All rows, 265 test images)",
            "",
            "| Model | Acc. | Prec. | Rec. | F1 |",
            "|---|---:|---:|---:|---:|",
        ]
        for key, row in PAPER_TABLE2.items():
            mark = " (this recipe)" if key == self.paper_row else ""
            lines.append(f"| {row['title']}{mark} | " + " | ".join(f"{row[k]:.2f}" for k in TABLE2_KEYS) + " |")
        lines += [
            "",
            f"Other scores: subset accuracy {_pct(self.metrics.get('subset_accuracy'))}, hamming loss "
            f"{_num(self.metrics.get('hamming_loss'))}, micro F1 {_pct(self.metrics.get('micro_f1'))}, macro F1 "
            f"{_pct(self.metrics.get('macro_f1'))}.",
        ]
        if self.detection is not None:
            d = self.detection
            lines += [
                "",
                "## Detection (artifact_iou, boxes in the 336x336 padded square)",
                "",
                "| mean IoU (matched) | mean IoU over GT boxes | precision@0.5 | recall@0.5 | F1@0.5 | predicted boxes | GT boxes | matched |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|",
                f"| {_num(d['mean_iou'])} | {_num(d['mean_iou_gt'])} | {_pct(d['precision'])} | {_pct(d['recall'])} | "
                f"{_pct(d['f1'])} | {d['num_predictions']} | {d['num_references']} | {d['num_matched']} |",
                "",
                "Boxes are matched one to one within each image and class by IoU; an unmatched prediction is a "
                "false positive, an unmatched ground-truth box a miss (IoU 0 in the GT-averaged mean).",
            ]
        figures = [(name, path) for name, path in self.files.items() if str(path).endswith(".png")]
        if figures:
            lines += ["", "## Figures", ""]
            lines += [f"![{name}]({Path(path).name})" for name, path in figures]
        return "\n".join(lines) + "\n"


def _pct(value) -> str:
    return "–" if value is None else f"{100 * float(value):.2f}"


def _num(value) -> str:
    return "–" if value is None else f"{float(value):.3f}"


def _empty_rate_sentence(metrics: dict) -> str:
    rate = metrics.get("empty_prediction_rate")
    if not rate:
        return ""
    return f"{100 * rate:.1f}% of the answers named no option; they count as empty predictions."


def format_table2(metrics: dict, paper_row: str | None = None) -> str:
    """Markdown table: the All row and every class row, ours beside the paper's (``–`` where the paper
    gives no number).

    >>> metrics = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "per_class": {}}
    >>> print(format_table2(metrics, "stage1_llm_frozen").splitlines()[2])
    | **All** | 50.00 | 50.00 | 50.00 | 50.00 | – | 45.66 | 54.40 | 51.84 | 52.02 |
    """
    from .taxonomy import NAMES

    paper = PAPER_TABLE2.get(paper_row) if paper_row else None
    if paper_row and paper is None:
        raise KeyError(f"Unknown Table 2 row {paper_row!r}; known rows: {sorted(PAPER_TABLE2)}")
    header = "| Class | Acc. | Prec. | Rec. | F1 | Support | Paper Acc. | Paper Prec. | Paper Rec. | Paper F1 |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ours = " | ".join(_pct(metrics[k]) for k in TABLE2_KEYS)
    theirs = " | ".join(f"{paper[k]:.2f}" if paper else "–" for k in TABLE2_KEYS)
    lines.append(f"| **All** | {ours} | – | {theirs} |")
    per_class = metrics.get("per_class", {})
    for name in NAMES:
        row = per_class.get(name)
        if row is None:
            continue
        if row["support"] == 0 and row.get("predicted", 0) == 0:
            # Neither in the references nor predicted: the metric's vacuous 1.0 would read as a success.
            values = " | ".join("–" for _ in range(4))
        else:
            values = " | ".join(_pct(row[k]) for k in ("jaccard", "precision", "recall", "f1"))
        lines.append(f"| {name} | {values} | {row['support']} | – | – | – | – |")
    return "\n".join(lines)


def evaluate_predictions(predictions, references) -> dict:
    """``artifact_f1`` over label lists (names or ids)."""
    import evaluate

    from . import metrics

    return evaluate.load(metrics.path("artifact_f1")).compute(predictions=predictions, references=references)


def score_boxes(records) -> dict:
    """``artifact_iou`` of predicted vs reference boxes; ``records`` have ``boxes`` and ``reference_boxes``
    (lists of ``{"label", "bbox"}`` as :func:`~synartifact_hf.parsing.parse_answer` returns them)."""
    import evaluate

    from . import metrics as metric_paths

    def as_boxes(boxes):
        return {"boxes": [b["bbox"] for b in boxes], "labels": [b["label"] for b in boxes]}

    return evaluate.load(metric_paths.path("artifact_iou")).compute(
        predictions=[as_boxes(r["boxes"]) for r in records],
        references=[as_boxes(r["reference_boxes"]) for r in records],
    )


def _reference_labels(example) -> list[str]:
    from .taxonomy import get_class

    return [get_class(label).name for label in example["labels"]]


def _columns_without_images(ds, names) -> list[dict]:
    """The rows of ``ds`` restricted to the columns ``names`` it has, read without decoding any image."""
    table = ds.select_columns([name for name in names if name in ds.column_names])[:]
    return [dict(zip(table, values)) for values in zip(*table.values())]


def _load_split(dataset, config, split, max_samples):
    import datasets

    if isinstance(dataset, (datasets.Dataset,)):
        ds = dataset
    else:
        ds = datasets.load_dataset(os.fspath(dataset), config, split=split)
    for column in ("images", "labels"):
        if column not in ds.column_names:
            raise ValueError(
                f"{dataset} [{config}/{split}] has no {column!r} column; evaluate on the 'classification' or "
                "'detection' config of a folder built by `synartifact-hf build-dataset`"
            )
    if max_samples is not None:
        ds = ds.select(range(min(max_samples, len(ds))))
    return ds


def _classify_rows(classifier, ds, progress=True):
    """The classifier's records for each row's first image, in row order (a served classifier's failure
    after its retries raises: a report is whole or not written)."""
    from tqdm.auto import tqdm

    outputs = []
    with tqdm(total=len(ds), desc="Classifying", disable=not progress) as bar:
        for batch in ds.iter(batch_size=classifier.batch_size):
            outputs.extend(classifier.classify([images[0] for images in batch["images"]]))
            bar.update(len(batch["images"]))
    return outputs


def evaluate_checkpoint(
    model,
    dataset,
    *,
    config: str = "classification",
    split: str = "test",
    output_dir: str | os.PathLike | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    max_samples: int | None = None,
    paper_row: str | None = None,
    device=None,
    progress: bool = True,
    served_model: str | None = None,
    concurrency: int = 16,
    timeout: float | None = None,
    max_retries: int | None = None,
) -> EvaluationReport:
    """Run the classifier on a split and score it; writes the report and figures when ``output_dir`` is set.

    Args:
        model: a checkpoint (folder or Hub id) for ``pipeline("artifact-classification")``, a pipeline
            object, or the URL of an OpenAI-compatible server ending in ``/v1`` (see
            :mod:`synartifact_hf.backends`; ``served_model`` picks its model, ``concurrency`` the requests
            in flight, ``timeout`` and ``max_retries`` bound each request).
        dataset: a built SynArtifact-1K folder / Hub repo, or a ``datasets.Dataset`` with ``images`` and
            ``labels`` (and ``completion`` for detection).
        config: ``classification`` or ``detection`` (detection prompts with the detection instruction and
            adds ``artifact_iou`` and the box figure).
        paper_row: a key of :data:`PAPER_TABLE2` whose numbers go beside ours.

    Under ``accelerate launch`` / ``torchrun`` each process runs its share of the rows on its own
    device (:mod:`synartifact_hf.scaleout`); every process returns the full report, and only the main
    process writes ``output_dir``.
    """
    from .backends import is_served_model, open_classifier
    from .instructions import detection_instruction
    from .parsing import parse_answer
    from .scaleout import gather_in_order, process_device, process_state, share

    if paper_row is not None and paper_row not in PAPER_TABLE2:
        raise KeyError(f"Unknown Table 2 row {paper_row!r}; known rows: {sorted(PAPER_TABLE2)}")
    if config not in ("classification", "detection"):
        raise ValueError(f"config must be 'classification' or 'detection', got {config!r}")
    state = process_state()
    with state.main_process_first():  # one process fills the datasets cache, the others read it
        ds = _load_split(dataset, config, split, max_samples)
    if max_new_tokens is None:  # detection answers carry boxes and a caption: give them room
        max_new_tokens = DEFAULT_MAX_NEW_TOKENS[config]
    detection = config == "detection"
    classifier = open_classifier(
        model, served_model=served_model, device=process_device(state, device), batch_size=batch_size,
        max_new_tokens=max_new_tokens, instruction=detection_instruction() if detection else None,
        concurrency=concurrency, timeout=timeout, max_retries=max_retries,
    )
    if is_served_model(model):
        model_name = classifier.identity
    else:
        model_name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else classifier.name
    # Under accelerate launch / torchrun each process classifies its contiguous share; the gathered
    # answers are in row order, so everything below is the single-process computation.
    mine = share(len(ds), state.process_index, state.num_processes)
    try:
        outputs = _classify_rows(classifier, ds.select(mine), progress=progress and state.is_main_process)
    finally:
        classifier.close()  # a served classifier's threads and connections; a pipeline stays as it is
    outputs = gather_in_order(outputs, state)

    columns = _columns_without_images(ds, ("labels", "image_id") + (("completion",) if detection else ()))
    references = [_reference_labels(example) for example in columns]
    records = []
    for i, (example, out) in enumerate(zip(columns, outputs)):
        record = {
            "image_id": example.get("image_id", i),
            "references": references[i],
            "labels": list(out["labels"]),
            "generated_text": out["generated_text"],
            "parse_issues": list(out.get("parse_issues", [])),
        }
        if detection:
            record["boxes"] = parse_answer(out["generated_text"]).boxes
            record["reference_boxes"] = parse_answer(example["completion"][0]["content"][0]["text"]).boxes
        records.append(record)
    metrics = evaluate_predictions([r["labels"] for r in records], references)

    detection_metrics = score_boxes(records) if detection else None
    report = EvaluationReport(
        model=model_name, dataset=str(dataset) if not hasattr(dataset, "column_names") else "<Dataset>",
        config=config, split=split, num_examples=len(records), metrics=metrics, predictions=records,
        paper_row=paper_row, detection=detection_metrics,
        settings={"batch_size": batch_size, "max_new_tokens": max_new_tokens, "max_samples": max_samples},
    )
    if output_dir is not None and state.is_main_process:
        write_report(report, output_dir, images=ds if detection else None)
    state.wait_for_everyone()
    return report


def write_report(report: EvaluationReport, output_dir, *, images=None, max_box_panels: int = 8) -> dict:
    """Write report.md, report.json, predictions.jsonl and the figures; returns ``{name: path}``.

    ``images``: the evaluated rows (with ``images``), needed for the detection box figure.
    Files are written to temporary names and renamed, so a crash leaves no half-written report.
    """
    from .drawing import (
        draw_box_comparison,
        plot_label_cooccurrence,
        plot_per_class_scores,
        save_box_comparison_grid,
    )
    from .instructions import padded_to_pixel

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    files["per_class_scores"] = plot_per_class_scores(
        report.metrics["per_class"], out / "per_class_scores.png",
        title=f"{Path(report.model).name}: per-class scores ({report.split}, {report.num_examples} images)",
    )
    files["label_cooccurrence"] = plot_label_cooccurrence(
        [r["references"] for r in report.predictions], [r["labels"] for r in report.predictions],
        out / "label_cooccurrence.png",
    )
    if images is not None and report.detection is not None:
        panels = []
        for i, record in enumerate(report.predictions):
            if not (record["boxes"] or record["reference_boxes"]):
                continue
            image = images[i]["images"][0]  # decoded only for the rows drawn
            w, h = image.size

            def to_pixels(boxes, w=w, h=h):
                return [{"label": b["label"], "bbox": padded_to_pixel(b["bbox"], w, h)} for b in boxes]

            panels.append(draw_box_comparison(image, to_pixels(record["boxes"]), to_pixels(record["reference_boxes"]),
                                              title=str(record["image_id"])))
            if len(panels) >= max_box_panels:
                break
        if panels:
            files["detection_boxes"] = save_box_comparison_grid(panels, out / "detection_boxes.png")
    report.files = {name: str(path) for name, path in files.items()}

    def write(key, name, text):
        write_text_atomic(out / name, text)
        report.files[key] = str(out / name)

    write("predictions", "predictions.jsonl",
          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report.predictions))
    write("report_json", "report.json", json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    write("report_md", "report.md", report.to_markdown())
    return dict(report.files)
