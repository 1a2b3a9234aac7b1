# Copyright 2026 The synartifact-hf contributors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""artifact_iou: IoU between predicted and reference artifact boxes of the same class."""

import datasets
import evaluate

from .box_matching import check_example, detection_scores

_DESCRIPTION = """
Localization scores for SynArtifact artifact detection (the paper's Appendix A.3): predicted boxes are
compared with the reference boxes of the same class by intersection over union (IoU).

Matching: within each image and each class, predicted and reference boxes are paired one to one, greedily
by descending IoU (the highest-IoU pair first, then the best pair among the boxes left, and so on; ties go
to the lower reference index, then the lower prediction index). Only overlapping pairs (IoU > 0) are
matched. Answers carry no confidence scores, so there is no score order to match by; greedy matching is
the usual detection-evaluation practice and equals the optimal assignment except when boxes of one class
overlap each other crosswise.

Scores over all images (boxes are pooled, each box counts once):

- mean_iou: mean IoU over the matched pairs only (how well the boxes that found something fit).
- mean_iou_gt: sum of matched IoUs / number of reference boxes; an unmatched reference box counts IoU 0
  (how well the references are covered).
- recall: fraction of reference boxes matched with IoU >= iou_threshold (default 0.5).
- precision: fraction of predicted boxes matched with IoU >= iou_threshold; an unmatched prediction is a
  false positive.
- f1: 2 x matches at the threshold / (predicted boxes + reference boxes).

Empty cases: with no boxes on either side (e.g. every image is "No artifacts" and the model says so) every
score is 1 (nothing to find, nothing claimed). A 0/0 with boxes on the other side scores 0; mean_iou is 0
when there are boxes but no overlapping same-class pair. The same numbers are reported per class.

Boxes are [x1, y1, x2, y2] in any units (the SynArtifact answer format uses fractions of the image padded to
a square), the same on both sides. Reference boxes need x1 < x2 and y1 < y2; a predicted box with no area
overlaps nothing and counts as an unmatched prediction.

Config "default" takes box lists; config "text" takes raw detection answers and parses them with
synartifact_hf.parsing.parse_answer (needs `pip install synartifact-hf`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `dict`): one dict per image, `{"boxes": [[x1, y1, x2, y2], ...], "labels":
        [class name, ...]}`, one label per box (an image without boxes: `{"boxes": [], "labels": []}`).
        With the "text" config: one raw detection answer string per image, parsed with
        `synartifact_hf.parsing.parse_answer` (its "Artifact location" boxes).
    references (`list` of `dict`): reference boxes, same form. With the "text" config either such dicts or
        reference answer strings.
    iou_threshold (`float`): IoU a matched pair needs to count for precision, recall and f1. Defaults to
        0.5.

Returns:
    mean_iou (`float`): mean IoU over matched same-class pairs. Range 0-1, higher is better.
    mean_iou_gt (`float`): matched IoU summed over reference boxes, unmatched ones counting 0, divided by
        the number of reference boxes.
    precision (`float`): fraction of predicted boxes matched with IoU >= iou_threshold.
    recall (`float`): fraction of reference boxes matched with IoU >= iou_threshold.
    f1 (`float`): harmonic mean of that precision and recall.
    num_predictions, num_references, num_matched (`int`): predicted boxes, reference boxes, matched pairs.
    per_class (`dict`): the same numbers for every class name that occurs on either side.

Raises:
    ValueError: mismatched numbers of predictions and references, no examples, a malformed example, box or
        label (the message names it, e.g. `predictions[3]["boxes"][1]`), or an iou_threshold outside (0, 1].

Examples:

    Example 1-Box lists: one good box, one box of the wrong class, one missed reference.
        >>> import synartifact_hf.metrics
        >>> artifact_iou = evaluate.load(synartifact_hf.metrics.path("artifact_iou"))
        >>> results = artifact_iou.compute(
        ...     predictions=[
        ...         {"boxes": [[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]], "labels": ["Localized blur", "Abnormal texture"]},
        ...         {"boxes": [], "labels": []},
        ...     ],
        ...     references=[
        ...         {"boxes": [[0.1, 0.1, 0.5, 0.4]], "labels": ["Localized blur"]},
        ...         {"boxes": [[0.2, 0.2, 0.3, 0.3]], "labels": ["Duplicated components"]},
        ...     ],
        ... )
        >>> print({k: round(v, 4) for k, v in results.items() if k != "per_class"})
        {'mean_iou': 0.75, 'mean_iou_gt': 0.375, 'precision': 0.5, 'recall': 0.5, 'f1': 0.5, 'num_predictions': 2, 'num_references': 2, 'num_matched': 1}

    Example 2-Raw detection answers with the "text" config.
        >>> artifact_iou = evaluate.load(synartifact_hf.metrics.path("artifact_iou"), "text")
        >>> answer = "Artifact judgement: Yes.\\nArtifact location:\\n1. Localized blur: [0.100, 0.100, 0.500, 0.500]"
        >>> results = artifact_iou.compute(
        ...     predictions=[answer], references=[{"boxes": [[0.1, 0.1, 0.5, 0.4]], "labels": ["Localized blur"]}]
        ... )
        >>> print(round(results["mean_iou"], 4), results["recall"])
        0.75 1.0
"""

_CITATION = """
@article{cao2024synartifact,
    title={Synartifact: Classifying and Alleviating Artifacts in Synthetic Images via Vision-Language Model},
    author={Cao, Bin and Yuan, Jianhao and Liu, Yexin and Li, Jian and Sun, Shuyang and Liu, Jing and Zhao, Bo},
    journal={arXiv preprint arXiv:2402.18068},
    year={2024}
}
"""

_CONFIGS = ("default", "text")


def _parse_answers(texts, side):
    """Box examples from raw detection answers, through the synartifact-hf answer parser."""
    try:
        from synartifact_hf.parsing import parse_answer
    except ImportError as error:
        raise ImportError(
            'The "text" config of artifact_iou parses answers with synartifact_hf.parsing.parse_answer: '
            'run `pip install synartifact-hf`, or parse the answers yourself and use the "default" config.'
        ) from error
    examples = []
    for text in texts:
        boxes = parse_answer(text).boxes
        examples.append({"boxes": [box["bbox"] for box in boxes], "labels": [box["label"] for box in boxes]})
    return examples


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ArtifactIou(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIGS:
            raise ValueError(
                f"Unknown artifact_iou config {self.config_name!r}; valid configs are {list(_CONFIGS)}"
            )
        # A dict of lists per image: the form every datasets version stores as given.
        boxes = {
            "boxes": datasets.Sequence(datasets.Sequence(datasets.Value("float64"), length=4)),
            "labels": datasets.Sequence(datasets.Value("string")),
        }
        if self.config_name == "text":
            answers = datasets.Value("string")
            features = [
                datasets.Features({"predictions": answers, "references": boxes}),
                datasets.Features({"predictions": answers, "references": answers}),
            ]
        else:
            features = datasets.Features({"predictions": boxes, "references": boxes})
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            reference_urls=["https://arxiv.org/abs/2402.18068"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references; bad input raises ValueError naming its index in the batch."""
        # Arrow encoding would silently coerce bad input (True -> 1.0, 3 -> "3"), so check it here, where
        # the example index is still known.
        predictions = self._checked_column(predictions, "predictions")
        references = self._checked_column(references, "references")
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and reference; bad input raises ValueError."""
        prediction = self._checked(prediction, "prediction", is_prediction=True)
        reference = self._checked(reference, "reference", is_prediction=False)
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _checked_column(self, column, side):
        if column is None:
            return None
        if isinstance(column, (str, bytes, dict)) or not hasattr(column, "__len__"):
            raise ValueError(f"{side} must be a list with one entry per image, got {type(column).__name__}")
        return [self._checked(entry, f"{side}[{i}]", side == "predictions") for i, entry in enumerate(column)]

    def _checked(self, entry, where, is_prediction):
        if entry is None:
            return None
        if self.config_name == "text" and (is_prediction or isinstance(entry, str)):
            if not isinstance(entry, str):
                raise ValueError(f"{where} must be an answer string with the text config, got {entry!r}")
            return entry
        return check_example(entry, where, strict_boxes=not is_prediction)

    def _compute(self, predictions, references, iou_threshold=0.5):
        if self.config_name == "text":
            predictions = _parse_answers(predictions, "predictions")
            if references and isinstance(references[0], str):
                references = _parse_answers(references, "references")
        return detection_scores(predictions, references, iou_threshold=iou_threshold)
