"""The artifact_f1 evaluate module: hand-computed values, empty-set rules, errors, configs, card."""

from __future__ import annotations

import json
import math
import sys

import evaluate
import numpy as np
import pytest

import synartifact_hf.metrics
from synartifact_hf.instructions import format_classification_answer
from synartifact_hf.metrics.artifact_f1.multilabel import CLASS_NAMES, multilabel_scores
from synartifact_hf.taxonomy import NAMES

DUP, OMIT, BLUR, TEX, DIST, NO = (
    "Duplicated components",
    "Omitted components",
    "Localized blur",
    "Abnormal texture",
    "Distorted and deformed components",
    "No artifacts",
)


@pytest.fixture(scope="module")
def artifact_f1():
    return evaluate.load(synartifact_hf.metrics.path("artifact_f1"))


@pytest.fixture(scope="module")
def artifact_f1_text():
    return evaluate.load(synartifact_hf.metrics.path("artifact_f1"), "text")


def test_class_names_match_taxonomy():
    # The module folder carries its own copy (it must work from the Hub without this package).
    assert CLASS_NAMES == NAMES


def test_hand_computed_example_based_and_pooled_scores(artifact_f1):
    preds = [[DUP], [NO], [BLUR, TEX], [DIST, DUP]]
    refs = [[DUP, OMIT], [NO], [BLUR], [OMIT]]
    r = artifact_f1.compute(predictions=preds, references=refs)
    # per example (J, P, R, F1): (1/2, 1, 1/2, 2/3), (1, 1, 1, 1), (1/2, 1/2, 1, 2/3), (0, 0, 0, 0)
    assert r["accuracy"] == pytest.approx(2 / 4)
    assert r["precision"] == pytest.approx(2.5 / 4)
    assert r["recall"] == pytest.approx(2.5 / 4)
    assert r["f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 4)
    # The paper's situation: mean F1 is not the harmonic mean of mean P and mean R.
    assert r["f1"] != pytest.approx(2 * r["precision"] * r["recall"] / (r["precision"] + r["recall"]))
    assert r["subset_accuracy"] == pytest.approx(1 / 4)
    # wrong decisions: OMIT (ex 0), TEX (ex 2), DIST, DUP, OMIT (ex 3) -> 5 of 4 x 14
    assert r["hamming_loss"] == pytest.approx(5 / 56)
    # pooled: TP = DUP, NO, BLUR = 3; FP = TEX, DIST, DUP = 3; FN = OMIT, OMIT = 2
    assert r["micro_precision"] == pytest.approx(3 / 6)
    assert r["micro_recall"] == pytest.approx(3 / 5)
    assert r["micro_f1"] == pytest.approx(6 / 11)
    # classes present: DUP (P 1/2, R 1, F 2/3), OMIT (0, 0, 0), BLUR (1,1,1), TEX (0, 0, 0),
    # DIST (0, 0, 0), NO (1, 1, 1); the 8 absent classes are left out of the macro average
    assert r["macro_precision"] == pytest.approx(2.5 / 6)
    assert r["macro_recall"] == pytest.approx(3 / 6)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 2) / 6)
    assert r["empty_prediction_rate"] == 0.0


def test_per_class_rows(artifact_f1):
    preds = [[DUP], [NO], [BLUR, TEX], [DIST, DUP]]
    refs = [[DUP, OMIT], [NO], [BLUR], [OMIT]]
    per_class = artifact_f1.compute(predictions=preds, references=refs)["per_class"]
    assert list(per_class) == list(NAMES)
    assert per_class[DUP] == {
        "accuracy": 3 / 4,  # wrong only on example 3 (predicted, not in the reference)
        "jaccard": 1 / 2,
        "precision": 1 / 2,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
        "predicted": 2,
    }
    assert per_class[OMIT] == {
        "accuracy": 2 / 4,
        "jaccard": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "support": 2,
        "predicted": 0,
    }
    assert per_class[NO]["f1"] == 1.0 and per_class[NO]["support"] == 1
    # absent from both sides: vacuously perfect, support 0
    assert per_class["Illegible letters"] == {
        "accuracy": 1.0,
        "jaccard": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 0,
        "predicted": 0,
    }


def test_empty_sets():
    both_empty = multilabel_scores([[]], [[]])
    for key in ("accuracy", "precision", "recall", "f1", "subset_accuracy", "micro_f1", "macro_f1"):
        assert both_empty[key] == 1.0, key
    assert both_empty["hamming_loss"] == 0.0
    assert both_empty["empty_prediction_rate"] == 1.0

    missed = multilabel_scores([[]], [[DUP]])
    assert (missed["accuracy"], missed["precision"], missed["recall"], missed["f1"]) == (0.0, 0.0, 0.0, 0.0)
    assert missed["per_class"][DUP]["precision"] == 0.0  # never predicted but present: 0, not 1

    spurious = multilabel_scores([[DUP]], [[]])
    assert (spurious["accuracy"], spurious["precision"], spurious["recall"], spurious["f1"]) == (0, 0, 0, 0)
    assert spurious["per_class"][DUP]["recall"] == 0.0  # support 0 but predicted: 0, not 1

    # an empty prediction is not "No artifacts"
    assert multilabel_scores([[]], [[NO]])["f1"] == 0.0


def test_ids_names_mixed_and_incremental_agree(artifact_f1):
    names = ([[DUP], [], [BLUR, NO]], [[DUP, OMIT], [NO], [BLUR]])
    ids = ([[3], [], [11, 13]], [[3, 4], [13], [11]])
    by_names = artifact_f1.compute(predictions=names[0], references=names[1])
    # an empty first prediction with ids later must not make evaluate store the ids as strings
    assert artifact_f1.compute(predictions=ids[0], references=ids[1]) == by_names
    assert (
        artifact_f1.compute(predictions=[[3], [], [BLUR, 13]], references=[[DUP, 4], [13], [11]]) == by_names
    )
    artifact_f1.add_batch(predictions=names[0][:2], references=ids[1][:2])
    artifact_f1.add(prediction=names[0][2], reference=ids[1][2])
    assert artifact_f1.compute() == by_names
    assert by_names == multilabel_scores(*names)


def test_outputs_are_json_floats(artifact_f1):
    r = artifact_f1.compute(predictions=[[DUP], [NO]], references=[[DUP], [OMIT]])
    json.dumps(r)
    for key, value in r.items():
        if key == "per_class":
            assert all(type(v) in (float, int) for row in value.values() for v in row.values())
        else:
            assert type(value) is float, key


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([[DUP], ["Distortion"]], [[DUP], [DUP]], r"predictions\[1\] has the unknown label 'Distortion'"),
        ([[DUP], [14]], [[DUP], [DUP]], r"predictions\[1\] has the unknown label id 14"),
        ([[DUP], [DUP]], [[DUP], [-1]], r"references\[1\] has the unknown label id -1"),
        ([[DUP], [1.7]], [[DUP], [DUP]], r"predictions\[1\] has the label 1.7 of type float"),
        ([[True]], [[DUP]], r"predictions\[0\] has the label True of type bool"),
        ([[DUP], "Omitted components"], [[DUP], [OMIT]], r"predictions\[1\] must be a list of labels"),
        ([[DUP]], [None], r"references\[0\] must be a list of labels"),
        ("Duplicated components", [[DUP]], r"predictions must be a list"),
    ],
)
def test_bad_input_names_the_index_and_the_valid_labels(artifact_f1, predictions, references, message):
    with pytest.raises(ValueError, match=message) as info:
        artifact_f1.compute(predictions=predictions, references=references)
    if "unknown" in message or "of type" in message:
        assert "Illegible letters" in str(info.value) and "ids 0-13" in str(info.value)
    with pytest.raises(ValueError, match=message):
        multilabel_scores(predictions, references)


def test_mismatched_lengths_and_no_examples(artifact_f1):
    with pytest.raises(ValueError, match=r"predictions \(2\) and references \(1\)"):
        artifact_f1.compute(predictions=[[DUP], [OMIT]], references=[[DUP]])
    with pytest.raises(ValueError, match="predictions has 2 examples but references has 1"):
        multilabel_scores([[DUP], [OMIT]], [[DUP]])
    with pytest.raises(ValueError, match="at least one example"):
        multilabel_scores([], [])


def test_unknown_config():
    with pytest.raises(ValueError, match=r"valid configs are \['default', 'text'\]"):
        evaluate.load(synartifact_hf.metrics.path("artifact_f1"), "answers")


def test_text_config_parses_answers(artifact_f1_text, artifact_f1):
    answers = [
        "1. Duplicated components.\n2. Omitted components.",
        "distortion; blurry",
        "No artifacts.",
        "The image looks fine to me I guess",  # no option at all: an empty prediction, not "No artifacts"
    ]
    refs = [[DUP], [DIST], [NO], [NO]]
    r = artifact_f1_text.compute(predictions=answers, references=refs)
    expected = artifact_f1.compute(predictions=[[DUP, OMIT], [DIST, BLUR], [NO], []], references=refs)
    assert r == expected
    assert r["empty_prediction_rate"] == 0.25
    # reference answers as text (the dataset's formatted answers) give the same numbers
    ref_texts = [format_classification_answer(labels) for labels in refs]
    assert artifact_f1_text.compute(predictions=answers, references=ref_texts) == expected
    # ids as references too
    assert artifact_f1_text.compute(predictions=answers, references=[[3], [2], [13], [13]]) == expected


def test_text_config_errors(artifact_f1_text, monkeypatch):
    with pytest.raises(ValueError, match=r"predictions\[1\] must be an answer string"):
        artifact_f1_text.compute(predictions=["1. No artifacts.", [NO]], references=[[NO], [NO]])
    with pytest.raises(ValueError, match=r"references\[1\] has no recognisable option"):
        artifact_f1_text.compute(
            predictions=["No artifacts", "No artifacts"], references=["No artifacts", "hmm"]
        )
    # Without synartifact-hf installed the label-list config works and the text config says what to install.
    monkeypatch.setitem(sys.modules, "synartifact_hf.parsing", None)
    with pytest.raises(ImportError, match="pip install synartifact-hf"):
        artifact_f1_text.compute(predictions=["1. No artifacts."], references=[[NO]])


def test_agrees_with_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    pred = rng.random((200, 14)) < 0.3
    ref = rng.random((200, 14)) < 0.3
    pred[:, 0] = ref[:, 0] = True  # no empty rows, so 0/0 conventions never come into play
    to_lists = lambda m: [[CLASS_NAMES[k] for k in np.flatnonzero(row)] for row in m]  # noqa: E731
    r = multilabel_scores(to_lists(pred), to_lists(ref))
    kwargs = {"y_true": ref, "y_pred": pred, "zero_division": 0}
    assert r["accuracy"] == pytest.approx(sklearn_metrics.jaccard_score(average="samples", **kwargs))
    for average in ("samples", "micro", "macro"):
        prefix = "" if average == "samples" else f"{average}_"
        assert r[f"{prefix}precision"] == pytest.approx(
            sklearn_metrics.precision_score(average=average, **kwargs)
        )
        assert r[f"{prefix}recall"] == pytest.approx(sklearn_metrics.recall_score(average=average, **kwargs))
        assert r[f"{prefix}f1"] == pytest.approx(sklearn_metrics.f1_score(average=average, **kwargs))
    assert r["hamming_loss"] == pytest.approx(sklearn_metrics.hamming_loss(ref, pred))
    assert r["subset_accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(ref, pred))
    per_class_f1 = sklearn_metrics.f1_score(average=None, **kwargs)
    assert [r["per_class"][name]["f1"] for name in CLASS_NAMES] == pytest.approx(list(per_class_f1))
    assert not math.isnan(r["macro_f1"])
