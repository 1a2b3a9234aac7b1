"""Evaluation report: pipeline on the test split -> artifact_f1 -> Table-2 markdown/JSON + figures;
detection boxes scored with artifact_iou and drawn yellow (predicted) vs green (ground truth)."""

from __future__ import annotations

import json

import pytest

from synartifact_hf.evaluation import (
    PAPER_TABLE2,
    EvaluationReport,
    evaluate_checkpoint,
    evaluate_predictions,
    format_table2,
    score_boxes,
    write_report,
)
from synartifact_hf.taxonomy import NAMES


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory):
    from synartifact_hf.data import build_sample_dataset

    return build_sample_dataset(tmp_path_factory.mktemp("data") / "synartifact-1k",
                                configs=["classification", "detection"])


def test_classification_report_end_to_end(tiny_llava_path, sample_dataset, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "eval"
    report = evaluate_checkpoint(tiny_llava_path, sample_dataset, output_dir=out, batch_size=4, max_new_tokens=6,
                                 paper_row="stage1_llm_frozen", progress=False)
    test = load_dataset(str(sample_dataset), "classification", split="test")
    assert report.num_examples == len(test) == len(report.predictions)

    # Predictions line up with the dataset rows, and the scores are artifact_f1 on exactly those labels.
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["image_id"] for r in lines] == test["image_id"]
    names = test.features["labels"].feature.names
    assert [r["references"] for r in lines] == [[names[i] for i in labels] for labels in test["labels"]]
    again = evaluate_predictions([r["labels"] for r in lines], [r["references"] for r in lines])
    saved = json.loads((out / "report.json").read_text())
    assert saved["metrics"]["f1"] == pytest.approx(again["f1"])
    assert saved["paper"] == PAPER_TABLE2["stage1_llm_frozen"]

    markdown = (out / "report.md").read_text()
    assert "| **All** | " + " | ".join(f"{100 * again[k]:.2f}" for k in ("accuracy", "precision", "recall", "f1")) \
        + " | – | 45.66 | 54.40 | 51.84 | 52.02 |" in markdown
    for name in NAMES:
        assert f"| {name} | " in markdown
    for figure in ("per_class_scores.png", "label_cooccurrence.png"):
        assert (out / figure).stat().st_size > 1000 and f"]({figure})" in markdown
    assert not list(out.glob(".*.tmp"))


def test_detection_boxes_scored_and_drawn(sample_dataset, tmp_path):
    """Detection answers (reference boxes shifted by a known amount) -> artifact_iou + the Figure 7 picture."""
    from datasets import load_dataset
    from PIL import Image

    from synartifact_hf.instructions import format_detection_answer
    from synartifact_hf.parsing import parse_answer

    test = load_dataset(str(sample_dataset), "detection", split="test")
    records = []
    for example in test:
        reference = parse_answer(example["completion"][0]["content"][0]["text"])
        shifted = [(b["label"], [b["bbox"][0] + 0.01, b["bbox"][1], b["bbox"][2] + 0.01, b["bbox"][3]])
                   for b in reference.boxes]
        predicted = parse_answer(format_detection_answer(shifted))
        records.append({"image_id": example["image_id"], "references": reference.labels, "labels": predicted.labels,
                        "generated_text": "", "parse_issues": [], "boxes": predicted.boxes,
                        "reference_boxes": reference.boxes})
    assert any(r["reference_boxes"] for r in records)
    scores = score_boxes(records)
    assert scores["num_predictions"] == scores["num_references"] == scores["num_matched"]
    assert 0.85 < scores["mean_iou"] < 1.0 and scores["recall"] == 1.0

    report = EvaluationReport(model="shifted-boxes", dataset=str(sample_dataset), config="detection", split="test",
                              num_examples=len(records), metrics=evaluate_predictions(
                                  [r["labels"] for r in records], [r["references"] for r in records]),
                              predictions=records, detection=scores)
    files = write_report(report, tmp_path, images=test)
    picture = Image.open(files["detection_boxes"]).convert("RGB")
    colors = set(picture.getdata())
    assert (255, 215, 0) in colors and (0, 200, 0) in colors  # yellow predicted, green ground truth
    markdown = (tmp_path / "report.md").read_text()
    assert "## Detection (artifact_iou" in markdown and f"| {scores['mean_iou']:.3f} |" in markdown


def test_detection_end_to_end_with_tiny_model(tiny_llava_path, sample_dataset, tmp_path):
    report = evaluate_checkpoint(tiny_llava_path, sample_dataset, config="detection", output_dir=tmp_path,
                                 max_samples=2, max_new_tokens=4, progress=False)
    assert report.detection is not None and report.detection["num_references"] >= 0
    assert all("reference_boxes" in r for r in report.predictions)
    assert (tmp_path / "report.json").is_file()


@pytest.mark.parametrize("config", ["classification", "detection"])
def test_each_image_is_decoded_once(tiny_llava_path, sample_dataset, tmp_path, monkeypatch, config):
    """Labels, ids and reference answers are read without the image column: the only decoding is the
    classifier's pass over the rows (and, for detection, the rows drawn in the box figure)."""
    from datasets import load_dataset
    from datasets.features import Image as ImageFeature

    decoded = []
    decode = ImageFeature.decode_example

    def counting_decode(self, value, token_per_repo_id=None):
        decoded.append(value.get("path"))
        return decode(self, value, token_per_repo_id=token_per_repo_id)

    monkeypatch.setattr(ImageFeature, "decode_example", counting_decode)
    test = load_dataset(str(sample_dataset), config, split="test").select(range(3))
    for row in test:  # what one pass over the rows decodes (datasets decodes a list's first image twice)
        assert row["images"]
    per_pass = len(decoded)
    decoded.clear()
    report = evaluate_checkpoint(tiny_llava_path, sample_dataset, config=config, output_dir=tmp_path, max_samples=3,
                                 max_new_tokens=2, progress=False)
    drawn = sum(bool(r["boxes"] or r["reference_boxes"]) for r in report.predictions) if config == "detection" else 0
    assert len(decoded) == per_pass * (report.num_examples + drawn) // 3
    assert [r["image_id"] for r in report.predictions] == test["image_id"]


def test_cli_evaluate(tiny_llava_path, sample_dataset, tmp_path, capsys):
    from synartifact_hf import cli

    code = cli.main(["evaluate", str(tiny_llava_path), str(sample_dataset), "--output-dir", str(tmp_path),
                     "--max-samples", "2", "--max-new-tokens", "4", "--paper-row", "baseline_llava15"])
    assert code == 0
    assert "| **All** |" in capsys.readouterr().out
    assert json.loads((tmp_path / "report.json").read_text())["paper_row"] == "baseline_llava15"


def test_bad_arguments(sample_dataset, tmp_path):
    with pytest.raises(KeyError, match="Unknown Table 2 row 'best'"):
        evaluate_checkpoint("unused", sample_dataset, paper_row="best")
    with pytest.raises(ValueError, match="config must be 'classification' or 'detection'"):
        evaluate_checkpoint("unused", sample_dataset, config="default")
    with pytest.raises(ValueError, match="has no 'images' column"):
        from datasets import Dataset

        evaluate_checkpoint("unused", Dataset.from_dict({"labels": [[1]]}))
    with pytest.raises(KeyError, match="known rows"):
        format_table2({"accuracy": 0, "precision": 0, "recall": 0, "f1": 0}, "nope")


def test_table_marks_classes_absent_on_both_sides():
    metrics = evaluate_predictions([["Localized blur"]], [["Localized blur", "Abnormal texture"]])
    table = format_table2(metrics)
    assert "| Localized blur | 100.00 | 100.00 | 100.00 | 100.00 | 1 |" in table
    assert "| Abnormal texture | 0.00 | 0.00 | 0.00 | 0.00 | 1 |" in table
    assert "| Illegible letters | – | – | – | – | 0 |" in table  # vacuous 1.0 is not shown as a success
