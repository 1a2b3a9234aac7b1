"""Multi-label scores over the 14 SynArtifact options: the arithmetic behind the ``artifact_f1`` metric.

This file travels with the evaluate module (``artifact_f1.py`` imports it relatively, and
``evaluate.load`` copies or downloads it along), so it imports nothing but numpy: the metric works from
the Hub for people who never installed ``synartifact-hf``. Inside the package it is importable as
``synartifact_hf.metrics.artifact_f1.multilabel``; the class names below are checked against
``synartifact_hf.taxonomy.NAMES`` by the test suite so the two cannot drift apart.

>>> scores = multilabel_scores([["Duplicated components"], ["No artifacts"]],
...                            [["Duplicated components", "Omitted components"], [13]])
>>> round(scores["accuracy"], 4), scores["precision"], scores["recall"], round(scores["f1"], 4)
(0.75, 1.0, 0.75, 0.8333)
>>> scores["per_class"]["Omitted components"]["recall"], scores["per_class"]["Omitted components"]["support"]
(0.0, 1)
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["CLASS_NAMES", "NUM_CLASSES", "label_ids", "label_matrix", "multilabel_scores"]

# The options of the SynArtifact instruction; the position is the class id of the raw release
# (0-based, "No artifacts" = 13).
CLASS_NAMES: tuple[str, ...] = (
    "Illegible letters",
    "Awkward facial expression",
    "Distorted and deformed components",
    "Duplicated components",
    "Omitted components",
    "Chromatic irregularity",
    "Abnormal non-spatial relationship",
    "Abnormal spatial relationship",
    "Abnormal texture",
    "Luminance discrepancy",
    "Impractical luminosity",
    "Localized blur",
    "Other artifacts",
    "No artifacts",
)
NUM_CLASSES = len(CLASS_NAMES)
_ID_OF = {name: i for i, name in enumerate(CLASS_NAMES)}
_VALID = f"valid labels are the class names {list(CLASS_NAMES)} or the class ids 0-{NUM_CLASSES - 1}"


def label_ids(labels, where: str = "labels") -> frozenset[int]:
    """Class ids of one example's labels (exact class names or ids 0-13, mixed freely; repeats collapse).

    ``where`` names the example in error messages, e.g. ``"predictions[3]"``.

    >>> sorted(label_ids(["Omitted components", 3, "Omitted components"]))
    [3, 4]
    >>> label_ids("Omitted components", "predictions[0]")
    Traceback (most recent call last):
    ...
    ValueError: predictions[0] must be a list of labels (class names or ids), got str 'Omitted components'
    """
    if isinstance(labels, (str, bytes, dict)) or not isinstance(
        labels, (list, tuple, set, frozenset, np.ndarray)
    ):
        raise ValueError(
            f"{where} must be a list of labels (class names or ids), got {type(labels).__name__} {labels!r}"
        )
    ids = set()
    for label in labels:
        if isinstance(label, str):
            if label not in _ID_OF:
                raise ValueError(f"{where} has the unknown label {label!r}; {_VALID}")
            ids.add(_ID_OF[label])
        elif isinstance(label, numbers.Integral) and not isinstance(label, (bool, np.bool_)):
            if not 0 <= int(label) < NUM_CLASSES:
                raise ValueError(f"{where} has the unknown label id {int(label)}; {_VALID}")
            ids.add(int(label))
        else:
            raise ValueError(
                f"{where} has the label {label!r} of type {type(label).__name__}, expected a class name (str) "
                f"or a class id (int); {_VALID}"
            )
    return frozenset(ids)


def label_matrix(label_lists, side: str = "labels") -> np.ndarray:
    """Boolean indicator matrix of shape (examples, 14) for a list of label lists (validated)."""
    if isinstance(label_lists, (str, bytes, dict)) or not hasattr(label_lists, "__len__"):
        raise ValueError(
            f"{side} must be a list with one label list per example, got {type(label_lists).__name__}"
        )
    matrix = np.zeros((len(label_lists), NUM_CLASSES), dtype=bool)
    for i, labels in enumerate(label_lists):
        matrix[i, sorted(label_ids(labels, f"{side}[{i}]"))] = True
    return matrix


def _ratio(num: float, den: float, num_other: float) -> float:
    """num / den; when den is 0 the quantity is undefined: 1.0 if the other side is empty too (nothing to
    find and nothing claimed), else 0.0."""
    if den:
        return float(num / den)
    return 1.0 if not num_other else 0.0


def _per_example(num: np.ndarray, den: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """Elementwise num/den where den > 0; else 1.0 where ``empty`` (both sets empty), else 0.0."""
    out = np.where(empty, 1.0, 0.0)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _counts_to_scores(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = _ratio(tp, tp + fp, tp + fn)
    recall = _ratio(tp, tp + fn, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, 0)
    return precision, recall, f1


def multilabel_scores(predictions, references) -> dict:
    """All ``artifact_f1`` numbers for label lists (class names or ids); see the metric card for definitions.

    Raises ``ValueError`` naming the offending example for wrong types, unknown labels, mismatched
    lengths or no examples at all.
    """
    pred = label_matrix(predictions, "predictions")
    ref = label_matrix(references, "references")
    if len(pred) != len(ref):
        raise ValueError(
            f"predictions has {len(pred)} examples but references has {len(ref)}; they must match"
        )
    if len(pred) == 0:
        raise ValueError("artifact_f1 needs at least one example; got empty predictions and references")

    inter = (pred & ref).sum(axis=1)
    n_pred = pred.sum(axis=1)
    n_ref = ref.sum(axis=1)
    union = (pred | ref).sum(axis=1)
    both_empty = union == 0

    tp = (pred & ref).sum(axis=0)
    fp = (pred & ~ref).sum(axis=0)
    fn = (~pred & ref).sum(axis=0)
    micro = _counts_to_scores(int(tp.sum()), int(fp.sum()), int(fn.sum()))

    per_class = {}
    present = []
    for k, name in enumerate(CLASS_NAMES):
        precision, recall, f1 = _counts_to_scores(int(tp[k]), int(fp[k]), int(fn[k]))
        per_class[name] = {
            "accuracy": float(np.mean(pred[:, k] == ref[:, k])),
            "jaccard": _ratio(int(tp[k]), int(tp[k] + fp[k] + fn[k]), 0),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(ref[:, k].sum()),
            "predicted": int(pred[:, k].sum()),
        }
        if tp[k] + fp[k] + fn[k]:
            present.append((precision, recall, f1))
    # A class absent from both sides has nothing to measure; averaging its 1.0s would flatter the model.
    macro = tuple(float(np.mean(column)) for column in zip(*present)) if present else (1.0, 1.0, 1.0)

    return {
        "accuracy": float(_per_example(inter, union, both_empty).mean()),
        "precision": float(_per_example(inter, n_pred, both_empty).mean()),
        "recall": float(_per_example(inter, n_ref, both_empty).mean()),
        "f1": float(_per_example(2 * inter, n_pred + n_ref, both_empty).mean()),
        "subset_accuracy": float(np.all(pred == ref, axis=1).mean()),
        "hamming_loss": float(np.mean(pred != ref)),
        "micro_precision": micro[0],
        "micro_recall": micro[1],
        "micro_f1": micro[2],
        "macro_precision": macro[0],
        "macro_recall": macro[1],
        "macro_f1": macro[2],
        "empty_prediction_rate": float(np.mean(n_pred == 0)),
        "per_class": per_class,
    }
