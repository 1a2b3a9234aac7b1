"""The artifact_iou evaluate module: IoU, greedy same-class matching, unmatched boxes, errors, configs."""

from __future__ import annotations

import json
import sys

import evaluate
import pytest

import synartifact_hf.metrics
from synartifact_hf.instructions import format_detection_answer
from synartifact_hf.metrics.artifact_iou.box_matching import box_iou, detection_scores, match_boxes

BLUR, TEX, DUP = "Localized blur", "Abnormal texture", "Duplicated components"


def ex(*pairs):
    return {"boxes": [list(box) for _, box in pairs], "labels": [label for label, _ in pairs]}


@pytest.fixture(scope="module")
def artifact_iou():
    return evaluate.load(synartifact_hf.metrics.path("artifact_iou"))


@pytest.fixture(scope="module")
def artifact_iou_text():
    return evaluate.load(synartifact_hf.metrics.path("artifact_iou"), "text")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
        ([0, 0, 2, 2], [1, 0, 3, 2], 2 / 6),
        ([0, 0, 4, 4], [1, 1, 3, 3], 4 / 16),  # contained
        ([0, 0, 1, 1], [1, 0, 2, 1], 0.0),  # touching edges
        ([0, 0, 1, 1], [5, 5, 6, 6], 0.0),
        ([1, 1, 0, 0], [0, 0, 1, 1], 0.0),  # inverted: no area
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # degenerate boxes never match
    ],
)
def test_box_iou(a, b, expected):
    assert box_iou(a, b) == pytest.approx(expected)
    assert box_iou(b, a) == pytest.approx(expected)
    # same units on both sides: scaling to pixels changes nothing
    assert box_iou([v * 336 for v in a], [v * 336 for v in b]) == pytest.approx(expected)


def test_greedy_matching_takes_the_best_pair_first():
    # references A = [0, 10], B = [10, 20] (unit height); p0 = [2, 12] overlaps A (8/12) and B (2/18);
    # p1 = [0, 6] overlaps A only (6/10). Greedy pairs p0-A first, leaving p1 and B unmatched (the optimal
    # assignment p0-B + p1-A would have a larger IoU sum, 0.711 > 0.667: the documented trade-off).
    ref = ex((BLUR, [0, 0, 10, 1]), (BLUR, [10, 0, 20, 1]))
    pred = ex((BLUR, [2, 0, 12, 1]), (BLUR, [0, 0, 6, 1]))
    assert match_boxes(pred, ref) == [(0, 0, pytest.approx(8 / 12))]
    r = detection_scores([pred], [ref])
    assert r["mean_iou"] == pytest.approx(8 / 12)
    assert r["mean_iou_gt"] == pytest.approx(8 / 12 / 2)
    assert (r["precision"], r["recall"], r["f1"]) == (0.5, 0.5, 0.5)
    assert (r["num_predictions"], r["num_references"], r["num_matched"]) == (2, 2, 1)


def test_only_same_class_boxes_match():
    box = [0.1, 0.1, 0.5, 0.5]
    r = detection_scores([ex((TEX, box))], [ex((BLUR, box))])
    assert r["num_matched"] == 0
    assert (r["mean_iou"], r["mean_iou_gt"], r["precision"], r["recall"], r["f1"]) == (
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )
    assert r["per_class"][BLUR]["recall"] == 0.0 and r["per_class"][TEX]["precision"] == 0.0


def test_hand_computed_dataset(artifact_iou):
    predictions = [
        ex((BLUR, [0, 0, 2, 2]), (BLUR, [4, 4, 5, 5])),  # IoU 1/3 with the blur ref; a stray blur box
        ex((DUP, [0, 0, 1, 1]), (DUP, [2, 0, 3, 1])),  # two exact duplicates
        ex(),  # missed texture
        ex(),  # clean image, nothing claimed
    ]
    references = [
        ex((BLUR, [1, 0, 3, 2])),
        ex((DUP, [0, 0, 1, 1]), (DUP, [2, 0, 3, 1])),
        ex((TEX, [0, 0, 1, 1])),
        ex(),
    ]
    r = artifact_iou.compute(predictions=predictions, references=references)
    assert r["num_predictions"] == 4 and r["num_references"] == 4 and r["num_matched"] == 3
    assert r["mean_iou"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert r["mean_iou_gt"] == pytest.approx((1 / 3 + 1 + 1) / 4)
    assert r["precision"] == pytest.approx(2 / 4)  # the duplicates; 1/3 is under the threshold
    assert r["recall"] == pytest.approx(2 / 4)
    assert r["f1"] == pytest.approx(2 * 2 / 8)
    assert list(r["per_class"]) == sorted([BLUR, DUP, TEX])
    assert r["per_class"][BLUR] == {
        "mean_iou": pytest.approx(1 / 3),
        "mean_iou_gt": pytest.approx(1 / 3),
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "num_predictions": 2,
        "num_references": 1,
        "num_matched": 1,
    }
    assert r["per_class"][TEX]["mean_iou"] == 0.0 and r["per_class"][TEX]["num_predictions"] == 0
    # a lower threshold lets the 1/3 pair count
    low = artifact_iou.compute(predictions=predictions, references=references, iou_threshold=0.3)
    assert (low["precision"], low["recall"]) == (3 / 4, 3 / 4)
    assert r == detection_scores(predictions, references)
    json.dumps(r)
    assert all(type(r[k]) is float for k in ("mean_iou", "mean_iou_gt", "precision", "recall", "f1"))


def test_empty_cases():
    nothing = detection_scores([ex(), ex()], [ex(), ex()])
    for key in ("mean_iou", "mean_iou_gt", "precision", "recall", "f1"):
        assert nothing[key] == 1.0, key
    spurious = detection_scores([ex((BLUR, [0, 0, 1, 1]))], [ex()])
    assert (spurious["mean_iou"], spurious["mean_iou_gt"], spurious["precision"], spurious["recall"]) == (
        0,
        0,
        0,
        0,
    )
    missed = detection_scores([ex()], [ex((BLUR, [0, 0, 1, 1]))])
    assert (missed["mean_iou"], missed["mean_iou_gt"], missed["precision"], missed["recall"]) == (0, 0, 0, 0)


def test_incremental_and_degenerate_predictions(artifact_iou):
    predictions = [ex((BLUR, [1, 1, 0, 0])), ex((DUP, [0, 0, 1, 1]))]  # an inverted predicted box: unmatched
    references = [ex((BLUR, [0, 0, 1, 1])), ex((DUP, [0, 0, 1, 1]))]
    full = artifact_iou.compute(predictions=predictions, references=references)
    assert (full["num_matched"], full["precision"], full["recall"]) == (1, 0.5, 0.5)
    artifact_iou.add_batch(predictions=predictions[:1], references=references[:1])
    artifact_iou.add(prediction=predictions[1], reference=references[1])
    assert artifact_iou.compute() == full


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        (
            [ex(), {"box": [], "labels": []}],
            [ex(), ex()],
            r"predictions\[1\] must be a dict with exactly the keys",
        ),
        ([ex((BLUR, [0, 0, 1]))], [ex()], r'predictions\[0\]\["boxes"\]\[0\] must be 4 finite numbers'),
        ([ex((BLUR, [0, 0, 1, float("nan")]))], [ex()], r'predictions\[0\]\["boxes"\]\[0\] must be 4 finite'),
        ([ex((BLUR, [0, 0, True, 1]))], [ex()], r'predictions\[0\]\["boxes"\]\[0\] must be 4 finite'),
        (
            [ex((3, [0, 0, 1, 1]))],
            [ex()],
            r'predictions\[0\]\["labels"\]\[0\] must be a non-empty class name',
        ),
        ([{"boxes": [[0, 0, 1, 1]], "labels": []}], [ex()], r"predictions\[0\] has 1 boxes but 0 labels"),
        (
            [ex()],
            [ex((BLUR, [0.5, 0, 0.2, 1]))],
            r'references\[0\]\["boxes"\]\[0\] must have x1 < x2 and y1 < y2',
        ),
        ([ex()], [{"boxes": "[0, 0, 1, 1]", "labels": []}], r'references\[0\]\["boxes"\] must be a list'),
        ([ex(), ex()], [ex()], r"predictions \(2\) and references \(1\)"),
    ],
)
def test_bad_input(artifact_iou, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        artifact_iou.compute(predictions=predictions, references=references)


def test_bad_threshold_and_no_examples(artifact_iou):
    for threshold in (0, 1.5, "0.5"):
        with pytest.raises(ValueError, match=r"iou_threshold must be a number in \(0, 1\]"):
            artifact_iou.compute(predictions=[ex()], references=[ex()], iou_threshold=threshold)
    with pytest.raises(ValueError, match="at least one example"):
        detection_scores([], [])


def test_text_config(artifact_iou_text, artifact_iou):
    refs = [ex((BLUR, [0.1, 0.1, 0.5, 0.4]), (DUP, [0.0, 0.0, 0.25, 0.25])), ex()]
    answers = [
        format_detection_answer([(BLUR, (0.1, 0.1, 0.5, 0.5)), (TEX, (0.6, 0.6, 0.9, 0.9))]),
        format_detection_answer([]),  # "Artifact judgement: No." ... no boxes
    ]
    expected = artifact_iou.compute(
        predictions=[ex((BLUR, [0.1, 0.1, 0.5, 0.5]), (TEX, [0.6, 0.6, 0.9, 0.9])), ex()], references=refs
    )
    assert artifact_iou_text.compute(predictions=answers, references=refs) == expected
    assert expected["mean_iou"] == pytest.approx(0.75) and expected["recall"] == 0.5
    ref_answers = [
        format_detection_answer([(BLUR, (0.1, 0.1, 0.5, 0.4)), (DUP, (0, 0, 0.25, 0.25))]),
        answers[1],
    ]
    assert artifact_iou_text.compute(predictions=answers, references=ref_answers) == expected
    # an answer without a location section is a prediction without boxes
    no_boxes = artifact_iou_text.compute(predictions=["1. Localized blur.", "No artifacts."], references=refs)
    assert no_boxes["num_predictions"] == 0 and no_boxes["recall"] == 0.0


def test_text_config_errors(artifact_iou_text, monkeypatch):
    with pytest.raises(ValueError, match=r"predictions\[0\] must be an answer string"):
        artifact_iou_text.compute(predictions=[ex()], references=[ex()])
    monkeypatch.setitem(sys.modules, "synartifact_hf.parsing", None)
    with pytest.raises(ImportError, match="pip install synartifact-hf"):
        artifact_iou_text.compute(predictions=["No artifacts."], references=[ex()])


def test_unknown_config():
    with pytest.raises(ValueError, match=r"valid configs are \['default', 'text'\]"):
        evaluate.load(synartifact_hf.metrics.path("artifact_iou"), "coco")
