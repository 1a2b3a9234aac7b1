"""Same-class box matching and IoU scores: the arithmetic behind the ``artifact_iou`` metric.

This file travels with the evaluate module (``artifact_iou.py`` imports it relatively, and
``evaluate.load`` copies or downloads it along), so it imports only the standard library: the metric
works from the Hub for people who never installed ``synartifact-hf``. Inside the package it is importable
as ``synartifact_hf.metrics.artifact_iou.box_matching``.

An example is ``{"boxes": [[x1, y1, x2, y2], ...], "labels": [label, ...]}`` (the box list of one image
and the class of each box; transformers' object-detection convention). Boxes may be normalized or in
pixels, as long as predictions and references use the same units.

>>> box_iou([0, 0, 2, 2], [1, 0, 3, 2])
0.3333333333333333
>>> pred = {"boxes": [[0, 0, 2, 2], [5, 5, 6, 6]], "labels": ["Localized blur", "Localized blur"]}
>>> ref = {"boxes": [[1, 0, 3, 2]], "labels": ["Localized blur"]}
>>> match_boxes(pred, ref)
[(0, 0, 0.3333333333333333)]
>>> scores = detection_scores([pred], [ref], iou_threshold=0.3)
>>> scores["precision"], scores["recall"], round(scores["mean_iou"], 4)
(0.5, 1.0, 0.3333)
"""

from __future__ import annotations

import math
import numbers

__all__ = ["box_iou", "check_example", "match_boxes", "detection_scores"]

_KEYS = ("boxes", "labels")


def box_iou(a, b) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes; 0.0 when the union has no area (a box
    with x2 < x1 or y2 < y1 has no area)."""
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(ix, 0.0) * max(iy, 0.0)
    area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
    union = area_a + area_b - inter
    return float(inter / union) if union > 0 else 0.0


def check_example(example, where: str = "example", strict_boxes: bool = False) -> dict:
    """Validate one example and return it as ``{"boxes": [[4 floats], ...], "labels": [str, ...]}``.

    ``strict_boxes`` (used for references) also requires x1 < x2 and y1 < y2; a prediction may be
    degenerate (it then overlaps nothing and counts as an unmatched prediction).

    >>> check_example({"boxes": [[0, 0, 1]], "labels": ["Localized blur"]}, "predictions[2]")
    Traceback (most recent call last):
    ...
    ValueError: predictions[2]["boxes"][0] must be 4 finite numbers [x1, y1, x2, y2], got [0, 0, 1]
    """
    if not isinstance(example, dict) or set(example) != set(_KEYS):
        got = sorted(example) if isinstance(example, dict) else type(example).__name__
        raise ValueError(f'{where} must be a dict with exactly the keys "boxes" and "labels", got {got}')
    boxes, labels = example["boxes"], example["labels"]
    for key, value in example.items():
        if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
            raise ValueError(f'{where}["{key}"] must be a list, got {type(value).__name__} {value!r}')
    if len(boxes) != len(labels):
        raise ValueError(
            f"{where} has {len(boxes)} boxes but {len(labels)} labels; they must match one to one"
        )
    clean = []
    for j, box in enumerate(boxes):
        if (
            not isinstance(box, (list, tuple))
            or len(box) != 4
            or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in box
            )
        ):
            raise ValueError(f'{where}["boxes"][{j}] must be 4 finite numbers [x1, y1, x2, y2], got {box!r}')
        if strict_boxes and not (box[0] < box[2] and box[1] < box[3]):
            raise ValueError(f'{where}["boxes"][{j}] must have x1 < x2 and y1 < y2, got {list(box)!r}')
        clean.append([float(v) for v in box])
    for j, label in enumerate(labels):
        if not isinstance(label, str) or not label:
            raise ValueError(f'{where}["labels"][{j}] must be a non-empty class name (str), got {label!r}')
    return {"boxes": clean, "labels": list(labels)}


def match_boxes(prediction: dict, reference: dict) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of same-label boxes by descending IoU.

    Returns ``(prediction_index, reference_index, iou)`` for every matched pair; only overlapping pairs
    (IoU > 0) are matched. Ties are broken by reference index, then prediction index.
    """
    candidates = []
    for i, (p_box, p_label) in enumerate(zip(prediction["boxes"], prediction["labels"])):
        for j, (r_box, r_label) in enumerate(zip(reference["boxes"], reference["labels"])):
            if p_label == r_label:
                iou = box_iou(p_box, r_box)
                if iou > 0:
                    candidates.append((-iou, j, i))
    used_pred, used_ref, pairs = set(), set(), []
    for neg_iou, j, i in sorted(candidates):
        if i not in used_pred and j not in used_ref:
            used_pred.add(i)
            used_ref.add(j)
            pairs.append((i, j, -neg_iou))
    return sorted(pairs)


def _ratio(num: float, den: float, num_other: float) -> float:
    """num / den; 0/0 is 1.0 when the other side is empty too (nothing to find, nothing claimed), else 0.0."""
    if den:
        return float(num / den)
    return 1.0 if not num_other else 0.0


def _summary(ious: list[float], n_pred: int, n_ref: int, iou_threshold: float) -> dict:
    hits = sum(iou >= iou_threshold for iou in ious)
    both_empty = n_pred == 0 and n_ref == 0
    return {
        "mean_iou": float(sum(ious) / len(ious)) if ious else (1.0 if both_empty else 0.0),
        "mean_iou_gt": _ratio(sum(ious), n_ref, n_pred),
        "precision": _ratio(hits, n_pred, n_ref),
        "recall": _ratio(hits, n_ref, n_pred),
        "f1": _ratio(2 * hits, n_pred + n_ref, 0),
        "num_predictions": n_pred,
        "num_references": n_ref,
        "num_matched": len(ious),
    }


def detection_scores(predictions, references, iou_threshold: float = 0.5) -> dict:
    """All ``artifact_iou`` numbers for lists of examples; see the metric card for definitions.

    Raises ``ValueError`` naming the offending example for wrong types, bad boxes, mismatched lengths or
    no examples at all.
    """
    if (
        not isinstance(iou_threshold, numbers.Real)
        or isinstance(iou_threshold, bool)
        or not 0 < iou_threshold <= 1
    ):
        raise ValueError(f"iou_threshold must be a number in (0, 1], got {iou_threshold!r}")
    for side, column in (("predictions", predictions), ("references", references)):
        if isinstance(column, (str, bytes, dict)) or not hasattr(column, "__len__"):
            raise ValueError(f"{side} must be a list with one example per image, got {type(column).__name__}")
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions has {len(predictions)} examples but references has {len(references)}; they must match"
        )
    if len(predictions) == 0:
        raise ValueError("artifact_iou needs at least one example; got empty predictions and references")

    ious: list[float] = []
    per_label: dict[str, list] = {}  # label -> [matched ious, number of predictions, number of references]
    n_pred = n_ref = 0
    for k, (prediction, reference) in enumerate(zip(predictions, references)):
        prediction = check_example(prediction, f"predictions[{k}]")
        reference = check_example(reference, f"references[{k}]", strict_boxes=True)
        n_pred += len(prediction["labels"])
        n_ref += len(reference["labels"])
        for label in prediction["labels"]:
            per_label.setdefault(label, [[], 0, 0])[1] += 1
        for label in reference["labels"]:
            per_label.setdefault(label, [[], 0, 0])[2] += 1
        for i, _, iou in match_boxes(prediction, reference):
            ious.append(iou)
            per_label[prediction["labels"][i]][0].append(iou)

    scores = _summary(ious, n_pred, n_ref, iou_threshold)
    scores["per_class"] = {
        label: _summary(label_ious, label_pred, label_ref, iou_threshold)
        for label, (label_ious, label_pred, label_ref) in sorted(per_label.items())
    }
    return scores
