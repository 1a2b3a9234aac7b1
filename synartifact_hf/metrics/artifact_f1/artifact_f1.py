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
"""artifact_f1: multi-label scores for SynArtifact artifact classification."""

import datasets
import evaluate

from .multilabel import CLASS_NAMES, label_ids, multilabel_scores

_DESCRIPTION = """
Multi-label classification scores over the 14 options of the SynArtifact instruction (13 artifact classes
and "No artifacts"), as reported in the paper's Table 2. Each example is a set of labels; an image either
has one or more artifact classes or "No artifacts".

Example-based scores (the Table 2 "All" row) are computed per example, then averaged over examples, with
P the predicted set and R the reference set of one example:

- accuracy: |P ∩ R| / |P ∪ R| (Jaccard index)
- precision: |P ∩ R| / |P|
- recall: |P ∩ R| / |R|
- f1: 2 |P ∩ R| / (|P| + |R|)

Per-example averaging is what the paper's numbers point at: its best model has precision 54.40 and recall
51.84 but F1 52.02, below their harmonic mean (53.09); a mean of per-example F1 values can be, a single F1
from pooled counts cannot.

Empty sets: a prediction and reference that are both empty score 1 on everything (nothing to find, nothing
claimed). A 0/0 ratio with only one side empty scores 0 (an empty prediction for a non-empty reference has
precision 0 and recall 0). An empty prediction means the model gave no usable option; it is never read as
"No artifacts", which is a class of its own.

Also reported: subset_accuracy (the predicted set equals the reference set), hamming_loss (the fraction of
the 14 x examples yes/no decisions that are wrong), micro precision/recall/F1 (from true/false positives
and false negatives pooled over all classes and examples), macro precision/recall/F1 (unweighted mean over
the classes that occur in the references or the predictions; a class absent from both is left out so its
vacuous 1.0 cannot lift the average), empty_prediction_rate, and per_class scores for all 14 classes.

Per class k, over all examples: accuracy is the fraction of examples whose prediction agrees with the
reference about k (both contain it or both lack it; 1 - the class's Hamming loss, so rare classes score high
by true negatives alone); jaccard is TP / (TP + FP + FN), the per-class analogue of the example-based
accuracy; precision, recall and f1 follow the empty-set rule above; support is the number of references
that contain k and predicted the number of predictions that contain k.

Config "default" takes label lists; config "text" takes raw model answers and parses them with
synartifact_hf.parsing.parse_answer (needs `pip install synartifact-hf`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str` or `int`): predicted labels of each example, as exact class
        names ("Duplicated components", "No artifacts", ...) or class ids 0-13 (the raw release's
        indices, "No artifacts" = 13). With the "text" config: one raw answer string per example, parsed
        with `synartifact_hf.parsing.parse_answer`; an answer with no recognisable option counts as an
        empty prediction.
    references (`list` of `list` of `str` or `int`): reference labels, same form as predictions. With
        the "text" config either label lists or reference answer strings (every reference answer must
        parse to at least one label).

Returns:
    accuracy (`float`): mean per-example Jaccard index |P ∩ R| / |P ∪ R|. Range 0-1, higher is better.
    precision (`float`): mean per-example |P ∩ R| / |P|.
    recall (`float`): mean per-example |P ∩ R| / |R|.
    f1 (`float`): mean per-example 2 |P ∩ R| / (|P| + |R|).
    subset_accuracy (`float`): fraction of examples whose predicted set equals the reference set.
    hamming_loss (`float`): fraction of wrong yes/no decisions over 14 classes x examples. Lower is better.
    micro_precision, micro_recall, micro_f1 (`float`): from counts pooled over classes and examples.
    macro_precision, macro_recall, macro_f1 (`float`): unweighted means over the classes present in the
        references or the predictions.
    empty_prediction_rate (`float`): fraction of examples with an empty prediction.
    per_class (`dict`): for each of the 14 class names, a dict with accuracy, jaccard, precision, recall,
        f1 (`float`), support and predicted (`int`).

Raises:
    ValueError: mismatched numbers of predictions and references, no examples, a label that is not a
        class name or id, or a value of the wrong type; the message names the offending example index
        and lists the valid labels.

Examples:

    Example 1-Label lists (names and ids can be mixed).
        >>> import synartifact_hf.metrics
        >>> artifact_f1 = evaluate.load(synartifact_hf.metrics.path("artifact_f1"))
        >>> results = artifact_f1.compute(
        ...     predictions=[["Duplicated components"], ["No artifacts"], ["Localized blur", "Abnormal texture"]],
        ...     references=[["Duplicated components", "Omitted components"], [13], ["Localized blur"]],
        ... )
        >>> print({k: round(results[k], 4) for k in ("accuracy", "precision", "recall", "f1")})
        {'accuracy': 0.6667, 'precision': 0.8333, 'recall': 0.8333, 'f1': 0.7778}
        >>> print(round(results["subset_accuracy"], 4), round(results["hamming_loss"], 4))
        0.3333 0.0476
        >>> print(results["per_class"]["Localized blur"])
        {'accuracy': 1.0, 'jaccard': 1.0, 'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'support': 1, 'predicted': 1}

    Example 2-Raw answers with the "text" config.
        >>> artifact_f1 = evaluate.load(synartifact_hf.metrics.path("artifact_f1"), "text")
        >>> results = artifact_f1.compute(
        ...     predictions=["1. Duplicated components.\\n2. Localized blur.", "distortion; blurry", "I am not sure."],
        ...     references=[["Duplicated components"], ["Distorted and deformed components"], ["No artifacts"]],
        ... )
        >>> print(round(results["f1"], 4), round(results["empty_prediction_rate"], 4))
        0.4444 0.3333
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
    """Label lists from raw answers, through the synartifact-hf answer parser."""
    try:
        from synartifact_hf.parsing import parse_answer
    except ImportError as error:
        raise ImportError(
            'The "text" config of artifact_f1 parses answers with synartifact_hf.parsing.parse_answer: '
            'run `pip install synartifact-hf`, or parse the answers yourself and use the "default" config.'
        ) from error
    labels = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"{side}[{i}] must be an answer string with the text config, got {type(text).__name__}"
            )
        parsed = parse_answer(text).labels
        if side == "references" and not parsed:
            raise ValueError(f"references[{i}] has no recognisable option: {text!r}")
        labels.append(parsed)
    return labels


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ArtifactF1(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIGS:
            raise ValueError(
                f"Unknown artifact_f1 config {self.config_name!r}; valid configs are {list(_CONFIGS)}"
            )
        names = datasets.Sequence(datasets.Value("string"))
        ids = datasets.Sequence(datasets.Value("int32"))
        if self.config_name == "text":
            answers = datasets.Value("string")
            features = [
                datasets.Features({"predictions": answers, "references": names}),
                datasets.Features({"predictions": answers, "references": ids}),
                datasets.Features({"predictions": answers, "references": answers}),
            ]
        else:
            features = [
                datasets.Features({"predictions": names, "references": names}),
                datasets.Features({"predictions": ids, "references": ids}),
            ]
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            reference_urls=["https://arxiv.org/abs/2402.18068"],
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references; bad input raises ValueError naming its index in the batch."""
        # Arrow encoding would silently coerce bad input (1.7 -> 1, "abc" -> ["a", "b", "c"], 3 -> "3"), so
        # check types here, where the example index is still known. Label lists are stored as class names,
        # which lets a batch mix names and ids and keeps an empty first row from picking the feature set.
        predictions = self._canonical_column(predictions, "predictions")
        references = self._canonical_column(references, "references")
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one prediction and reference; bad input raises ValueError."""
        prediction = self._canonical(prediction, "prediction", is_prediction=True)
        reference = self._canonical(reference, "reference", is_prediction=False)
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _canonical_column(self, column, side):
        if column is None:
            return None
        if isinstance(column, (str, bytes, dict)) or not hasattr(column, "__len__"):
            raise ValueError(f"{side} must be a list with one entry per example, got {type(column).__name__}")
        return [
            self._canonical(entry, f"{side}[{i}]", side == "predictions") for i, entry in enumerate(column)
        ]

    def _canonical(self, entry, where, is_prediction):
        if entry is None:
            return None
        if self.config_name == "text" and (is_prediction or isinstance(entry, str)):
            if not isinstance(entry, str):
                raise ValueError(f"{where} must be an answer string with the text config, got {entry!r}")
            return entry
        return [CLASS_NAMES[k] for k in sorted(label_ids(entry, where))]

    def _compute(self, predictions, references):
        if self.config_name == "text":
            predictions = _parse_answers(predictions, "predictions")
            if references and isinstance(references[0], str):
                references = _parse_answers(references, "references")
        return multilabel_scores(predictions, references)
