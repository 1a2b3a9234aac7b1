"""The artifact reward for DDPO (paper Eq. 4): a picklable callable ``reward(images, prompts, metadata)``.

For an image x the classifier answers A (``pipeline("artifact-classification")``), and

    r(x) = BERTScore("No artifacts", A) - alpha * sum_k BERTScore(s_k, A) + beta

with s_k the phrases of the 13 artifact classes (``taxonomy.CLASSES[k].phrase``, k = 0..12).
``BERTScore(s, A)`` takes the answer A as the candidate and the phrase s as the reference, and is the
F1 component by default (``component="precision"`` / ``"recall"`` selectable); scores come from
:class:`synartifact_hf.bertscore.BERTScoreMatrix` (all-MiniLM-L6-v2, layer 6, by default; the 14
phrases are embedded once, each batch of answers once).

Interface (the DDPO reward contract of TRL's ``DDPOTrainer`` and ddpo-pytorch)::

    reward = ArtifactReward("path/to/classifier")      # or a pipeline object, or any callable
    rewards, info = reward(images, prompts, metadata)  # rewards: float32 tensor (B,), on CPU

* ``images``: float tensor (B, 3, H, W) in [0, 1] on any device, float array in [0, 1] or uint8 array /
  tensor (B, H, W, 3), or a list of PIL images: :func:`synartifact_hf.images.to_pil_images`, the same
  rules as the classifier pipeline. ``prompts`` (length B or None) and ``metadata`` are accepted and not used: the
  classifier only sees the image.
* ``info`` (JSON-able, for logging): ``mode``, ``answers`` (raw text), ``labels`` (parsed),
  ``has_artifacts``, ``parse_issues``, ``no_artifacts_term`` (per image), ``artifact_terms`` (13 per
  image, taxonomy order), ``artifact_sum``, ``rewards``, ``empty`` / ``unparseable`` (flags),
  ``num_empty``, ``num_unparseable``, ``num_clipped``, ``alpha``, ``beta``, ``component``, and in
  likelihood mode ``scores``.
* ``classifier``: a model path or Hub id (the pipeline is built on first call, so pickling a reward
  stays cheap), the URL of an OpenAI-compatible server ending in ``/v1`` (the served classifier of
  :mod:`synartifact_hf.backends`, opened on first call; ``served_model=`` picks the server's model; BERTScore
  stays local), an ``artifact-classification`` pipeline (called with ``batch_size``), a classifier from
  :func:`~synartifact_hf.backends.open_classifier`, or any callable
  taking a list of PIL images and returning one dict per image with the pipeline's keys
  (``generated_text``, ``labels``, ``has_artifacts``, ``parse_issues``; ``scores`` for likelihood mode).
* ``rewards_from_outputs(outputs)`` / ``rewards_from_answers(answers)`` compute the same from classifier
  outputs / answer texts (no images).

Bounds, alpha and beta
----------------------
The paper chooses alpha and beta "so that r > 0" without giving values. Every term lies in an interval
[lo, hi]: raw BERTScore in [0, 1] (each term is clipped to it; the masked greedy matching can dip a
hair below 0 for unrelated text, e.g. -0.01, and ``info["num_clipped"]`` counts such values). Then
r >= lo - 13 * alpha * hi + beta, so the default ``beta = 13 * alpha * hi - lo`` makes r >= 0 for every
answer (r = 0 would need an answer matching all 13 artifact phrases perfectly and nothing of
"No artifacts"). The default ``alpha = 1/13`` weighs the artifact phrases together as much as the
"No artifacts" phrase: r = S_none - mean_k S_k + 1, in [0, 2].

Rescaling / centering (``baseline``)
------------------------------------
Raw BERTScore sits high for unrelated text with anisotropic backbones (about 0.8 with roberta-large),
which squeezes the reward into a narrow band. ``baseline`` rescales every term as
(s - b) / (1 - b): ``"bert_score"`` uses the baseline file ``bert_score`` ships for the backbone and
layer (roberta-large and other listed models; none exists for MiniLM), ``"taxonomy"`` uses the mean
score between two different taxonomy phrases (a same-domain "unrelated" level, computable for any
backbone), or pass (P, R, F) floats. The bounds follow: lo = -b / (1 - b), hi = 1, and so does the
default beta. Note that this is a positive affine map of the reward; DDPO normalises advantages per
prompt (or per batch), so training is unchanged and only the logged numbers become easier to read.
The default MiniLM layer 6 already spreads well: about 0.1-0.2 for unrelated phrases, 0.7-0.8 for the
right one.

Empty and unparseable answers
-----------------------------
An empty answer (nothing but whitespace) gets ``empty_reward``, by default the lower bound of r (0 with
the default beta): an image the classifier cannot describe must not look better than a described one.
An unparseable answer (text, but no taxonomy label parsed) is still text, so Eq. 4 scores it as usual
(``unparseable_as_empty=True`` treats it as empty instead). Both are counted in ``info``. Rewards are
never NaN.

Likelihood mode
---------------
``mode="likelihood"`` uses the pipeline's per-option ``scores`` (a distribution over the 14 options,
``return_scores=True``; see :mod:`synartifact_hf.scoring`) instead of BERTScore:
r = P(No artifacts) - alpha * sum_k P(artifact k) + beta. Since the scores sum to 1 this is
(1 + alpha) * P(No artifacts) - alpha + beta, in [beta - alpha, 1 + beta]; the default beta = alpha
gives r >= 0. Every answer has scores, so nothing is empty in this mode.

>>> from synartifact_hf.reward import ArtifactReward
>>> reward = ArtifactReward(classifier=None)  # no classifier: score answer texts directly
>>> rewards, info = reward.rewards_from_answers(["1. No artifacts.", "1. Duplicated components.", ""])
>>> [round(x, 2) for x in rewards.tolist()]  # the default MiniLM backbone, layer 6
[1.54, 0.94, 0.0]
>>> bool(rewards[0] > rewards[1] > rewards[2] == 0.0), info["num_empty"]
(True, 1)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

# Re-exported: reward code written for DDPO imports to_pil_images from here. One converter, one float
# rule (floats in [0, 1]) for the reward and the classifier pipeline.
from .images import to_pil_images
from .taxonomy import ARTIFACT_CLASSES, CLASSES, NO_ARTIFACTS, NO_ARTIFACTS_ID

__all__ = ["ArtifactReward", "PHRASES", "to_pil_images"]

MODES = ("bertscore", "likelihood")
# The reward's reference phrases, in taxonomy order: s_0..s_12, then "No artifacts".
PHRASES: tuple[str, ...] = tuple(c.phrase for c in CLASSES)
_NUM_ARTIFACTS = len(ARTIFACT_CLASSES)
_COMPONENTS = {"f1": "f1", "f": "f1", "precision": "precision", "p": "precision", "recall": "recall", "r": "recall"}
_COMPONENT_INDEX = {"precision": 0, "recall": 1, "f1": 2}


class ArtifactReward:
    """Paper Eq. 4 as a DDPO reward function; see the module docstring for every choice.

    Args:
        classifier: model path / Hub id (built lazily with ``pipeline_kwargs``), an
            ``artifact-classification`` pipeline, any callable with its output contract, or ``None`` to
            use only ``rewards_from_answers`` / ``rewards_from_outputs``.
        mode: ``"bertscore"`` (Eq. 4) or ``"likelihood"`` (per-option scores).
        alpha: weight of the artifact terms (>= 0). Default 1/13.
        beta: offset; default derived from the bounds so that r >= 0.
        component: BERTScore component, ``"f1"`` (default), ``"precision"`` or ``"recall"``.
        bertscore_model: backbone for ``BERTScoreMatrix`` (default all-MiniLM-L6-v2).
        num_layers: its layer (default per ``synartifact_hf.bertscore.resolve_model``).
        baseline: ``None``, ``"bert_score"``, ``"taxonomy"`` or (P, R, F) floats (see the module docstring).
        empty_reward: reward of an empty answer; default the lower bound of r.
        unparseable_as_empty: give answers without any parsed label the empty reward too.
        batch_size: images per classifier forward pass.
        classifier_kwargs: extra call arguments for the classifier (e.g. ``{"max_new_tokens": 64}``).
        pipeline_kwargs: arguments for building the pipeline from a path (e.g. ``{"dtype": torch.bfloat16}``).
        device: device for the pipeline built from a path and for the BERTScore model.
        scorer: a ready ``BERTScoreMatrix`` to share (overrides ``bertscore_model``/``num_layers``).
        served_model: with a server URL as ``classifier``: the server's model (default: its only one).
        concurrency: with a server URL: requests in flight at once.
    """

    def __init__(
        self,
        classifier: Any = None,
        *,
        mode: str = "bertscore",
        alpha: float = 1.0 / _NUM_ARTIFACTS,
        beta: float | None = None,
        component: str = "f1",
        bertscore_model: str | os.PathLike = "all-MiniLM-L6-v2",
        num_layers: int | None = None,
        baseline: str | tuple[float, float, float] | None = None,
        empty_reward: float | None = None,
        unparseable_as_empty: bool = False,
        batch_size: int = 8,
        classifier_kwargs: dict | None = None,
        pipeline_kwargs: dict | None = None,
        device: str | None = None,
        scorer=None,
        served_model: str | None = None,
        concurrency: int = 16,
    ):
        from .backends import is_served_model

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "likelihood" and is_served_model(classifier):
            raise ValueError(
                f"mode='likelihood' needs the classifier's per-option scores, which the served classifier "
                f"({classifier}) does not give; use mode='bertscore' (paper Eq. 4: the answer text is enough, "
                "BERTScore runs here) or load the classifier in-process"
            )
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        if component.lower() not in _COMPONENTS:
            raise ValueError(f"component must be 'f1', 'precision' or 'recall', got {component!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if baseline is not None and baseline not in ("bert_score", "taxonomy"):
            if isinstance(baseline, str) or len(baseline) != 3 or any(float(b) >= 1 for b in baseline):
                raise ValueError(f"baseline must be None, 'bert_score', 'taxonomy' or three floats < 1, got {baseline!r}")
            baseline = tuple(float(b) for b in baseline)
        if mode == "likelihood" and baseline is not None:
            raise ValueError("baseline applies to BERTScore terms; mode='likelihood' has none")
        self.classifier = classifier
        self.mode = mode
        self.alpha = float(alpha)
        self._beta = None if beta is None else float(beta)
        self.component = _COMPONENTS[component.lower()]
        self.bertscore_model = os.fspath(bertscore_model)
        self.num_layers = num_layers
        self.baseline = baseline
        self._empty_reward = None if empty_reward is None else float(empty_reward)
        self.unparseable_as_empty = unparseable_as_empty
        self.batch_size = batch_size
        self.classifier_kwargs = dict(classifier_kwargs or {})
        self.pipeline_kwargs = dict(pipeline_kwargs or {})
        self.device = device
        self.served_model = served_model
        self.concurrency = concurrency
        self._scorer = scorer
        self._pipeline = None  # built from a path
        self._baseline_values = None
        self._lock = threading.Lock()

    # -- pickling: settings only (a path-built pipeline and the BERTScore model are rebuilt lazily) -----
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_pipeline"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        what = self.classifier if isinstance(self.classifier, (str, os.PathLike)) else type(self.classifier).__name__
        return (f"ArtifactReward(classifier={what!r}, mode={self.mode!r}, alpha={self.alpha:g}, beta={self.beta:g}, "
                f"component={self.component!r}, baseline={self.baseline!r})")

    # -- bounds -----------------------------------------------------------------------------------------
    @property
    def term_bounds(self) -> tuple[float, float]:
        """[lo, hi] of one term: BERTScore in [0, 1] (after rescaling: [-b / (1 - b), 1]); scores in [0, 1]."""
        if self.mode == "likelihood" or self.baseline is None:
            return 0.0, 1.0
        b = self._baseline_triple()[_COMPONENT_INDEX[self.component]]
        return -b / (1 - b), 1.0

    @property
    def beta(self) -> float:
        """The offset: as given, else the smallest value that keeps r >= 0 (module docstring)."""
        if self._beta is not None:
            return self._beta
        if self.mode == "likelihood":
            return self.alpha
        lo, hi = self.term_bounds
        return _NUM_ARTIFACTS * self.alpha * hi - lo

    @property
    def bounds(self) -> tuple[float, float]:
        """[min, max] of r over all possible answers."""
        lo, hi = self.term_bounds
        if self.mode == "likelihood":
            return self.beta - self.alpha, 1.0 + self.beta
        return lo - _NUM_ARTIFACTS * self.alpha * hi + self.beta, hi - _NUM_ARTIFACTS * self.alpha * lo + self.beta

    @property
    def empty_reward(self) -> float:
        return self._empty_reward if self._empty_reward is not None else self.bounds[0]

    # -- lazy parts -------------------------------------------------------------------------------------
    @property
    def scorer(self):
        """The ``BERTScoreMatrix`` (built on first use)."""
        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    from .bertscore import BERTScoreMatrix

                    self._scorer = BERTScoreMatrix(self.bertscore_model, self.num_layers, device=self.device)
        return self._scorer

    def _baseline_triple(self) -> tuple[float, float, float]:
        if self._baseline_values is None:
            if self.baseline == "bert_score":
                from .bertscore import bert_score_baseline

                self._baseline_values = bert_score_baseline(self.scorer.model_name, self.scorer.layer)
            elif self.baseline == "taxonomy":
                s = self.scorer.score(list(PHRASES), list(PHRASES))
                off = ~_eye(len(PHRASES))
                self._baseline_values = tuple(float(m[off].mean()) for m in (s.precision, s.recall, s.f1))
            else:
                self._baseline_values = self.baseline
        return self._baseline_values

    def _classifier(self):
        from .backends import is_served_model

        if self.classifier is None:
            raise ValueError("This ArtifactReward has no classifier; pass classifier=<path, pipeline or callable>")
        if not isinstance(self.classifier, (str, os.PathLike)):
            return self.classifier
        if self._pipeline is None:
            with self._lock:
                if self._pipeline is None and is_served_model(self.classifier):
                    from .backends import open_classifier

                    settings = dict(self.classifier_kwargs)
                    other = sorted(set(settings) - {"max_new_tokens", "instruction"})
                    if other:
                        raise ValueError(f"classifier_kwargs {other} do not apply to the served classifier "
                                         f"{self.classifier}; it takes max_new_tokens and instruction")
                    self._pipeline = open_classifier(self.classifier, served_model=self.served_model,
                                                     batch_size=self.batch_size, concurrency=self.concurrency,
                                                     **settings)
                if self._pipeline is None:
                    from .pipeline import load_pipeline

                    kwargs = dict(self.pipeline_kwargs)
                    if self.device is not None:
                        kwargs.setdefault("device", self.device)
                    self._pipeline = load_pipeline(self.classifier, **kwargs)
        return self._pipeline

    # -- the reward -------------------------------------------------------------------------------------
    def __call__(self, images, prompts: Sequence[str] | None = None, metadata: Any = None):
        """``(rewards, info)`` for a batch of images: rewards a float32 CPU tensor of shape (B,)."""
        pil = to_pil_images(images)
        if prompts is not None and len(prompts) != len(pil):
            raise ValueError(f"Got {len(pil)} images but {len(prompts)} prompts")
        if not pil:
            return self.rewards_from_outputs([])
        return self.rewards_from_outputs(self.classify(pil))

    def classify(self, images: list) -> list[dict]:
        """Run the classifier on PIL images (batched), returning one output dict per image."""
        from transformers import Pipeline

        from .backends import ClassifierBackend

        classifier = self._classifier()
        kwargs = dict(self.classifier_kwargs)
        if self.mode == "likelihood":
            kwargs.setdefault("return_scores", True)
        if isinstance(classifier, Pipeline):
            kwargs.setdefault("batch_size", self.batch_size)
        if isinstance(classifier, ClassifierBackend):  # settled when it was opened
            outputs = classifier.classify(list(images))
        else:
            outputs = classifier(list(images), **kwargs)
        if isinstance(outputs, dict):
            outputs = [outputs]
        outputs = list(outputs)
        if len(outputs) != len(images):
            raise ValueError(f"The classifier returned {len(outputs)} outputs for {len(images)} images")
        return outputs

    def rewards_from_answers(self, answers: Sequence[str]):
        """Eq. 4 for answer texts (parsed here with ``parse_answer``); bertscore mode only."""
        from .parsing import parse_answer

        if self.mode != "bertscore":
            raise ValueError(f"rewards_from_answers scores answer texts, which needs mode='bertscore'; this reward "
                             f"has mode={self.mode!r}, which scores the classifier's option likelihoods: call it "
                             "on images, or on the pipeline's outputs with scores (rewards_from_outputs)")
        if isinstance(answers, str):
            raise TypeError("answers must be a list of strings, not a single string")
        outputs = []
        for i, text in enumerate(answers):
            if not isinstance(text, str):
                raise TypeError(f"answers[{i}] is {type(text).__name__}, expected str")
            parsed = parse_answer(text)
            outputs.append({"generated_text": text, "labels": parsed.labels, "has_artifacts": parsed.has_artifacts,
                            "parse_issues": list(parsed.issues)})
        return self.rewards_from_outputs(outputs)

    def rewards_from_outputs(self, outputs: Sequence[dict]):
        """``(rewards, info)`` from classifier outputs (one dict per image, the pipeline's keys)."""
        import torch

        for i, out in enumerate(outputs):
            if not isinstance(out, dict) or "generated_text" not in out:
                raise ValueError(f"Classifier output {i} must be a dict with 'generated_text' (the pipeline's "
                                 f"output contract), got {out!r:.200}")
            if not isinstance(out["generated_text"], str):
                raise ValueError(f"Classifier output {i}: 'generated_text' must be the answer as a string (the "
                                 f"pipeline's output contract), got {type(out['generated_text']).__name__} "
                                 f"{out['generated_text']!r:.200}")
        answers = [out["generated_text"] for out in outputs]
        labels = [list(out.get("labels") or []) for out in outputs]
        empty = [not a.strip() for a in answers]
        unparseable = [not e and not lab for e, lab in zip(empty, labels)]
        info: dict[str, Any] = {
            "mode": self.mode,
            "answers": answers,
            "labels": labels,
            "has_artifacts": [out.get("has_artifacts") for out in outputs],
            "parse_issues": [list(out.get("parse_issues") or []) for out in outputs],
            "empty": empty,
            "unparseable": unparseable,
            "num_empty": sum(empty),
            "num_unparseable": sum(unparseable),
            "alpha": self.alpha,
            "beta": self.beta,
        }
        n = len(outputs)
        if self.mode == "likelihood":
            terms = torch.tensor([self._option_scores(i, out) for i, out in enumerate(outputs)],
                                 dtype=torch.float64).reshape(n, len(PHRASES))
            info["scores"] = [out["scores"] for out in outputs]
            info["num_clipped"] = 0
            use_empty = torch.zeros(n, dtype=torch.bool)
        else:
            info["component"] = self.component
            terms = torch.zeros(n, len(PHRASES), dtype=torch.float64)
            use_empty = torch.tensor([e or (self.unparseable_as_empty and u) for e, u in zip(empty, unparseable)],
                                     dtype=torch.bool)
            rows = [i for i in range(n) if not use_empty[i]]
            clipped = 0
            if rows:
                s = self.scorer.score([answers[i] for i in rows], list(PHRASES)).component(self.component).double()
                if self.baseline is not None:
                    b = self._baseline_triple()[_COMPONENT_INDEX[self.component]]
                    s = (s - b) / (1 - b)
                lo, hi = self.term_bounds
                clipped = int(((s < lo) | (s > hi)).sum())
                terms[rows] = s.clamp(lo, hi)
            info["num_clipped"] = clipped
        no_artifacts = terms[:, NO_ARTIFACTS_ID]
        artifact = terms[:, :NO_ARTIFACTS_ID]
        rewards = no_artifacts - self.alpha * artifact.sum(dim=1) + self.beta
        rewards = torch.where(use_empty, torch.full_like(rewards, self.empty_reward), rewards)
        info["no_artifacts_term"] = no_artifacts.tolist()
        info["artifact_terms"] = artifact.tolist()
        info["artifact_sum"] = artifact.sum(dim=1).tolist()
        info["rewards"] = rewards.tolist()
        return rewards.float(), info

    def _option_scores(self, i: int, out: dict) -> list[float]:
        scores = out.get("scores")
        if not isinstance(scores, dict):
            raise ValueError(
                f"mode='likelihood' needs per-option 'scores' in classifier output {i}; call the "
                "artifact-classification pipeline with return_scores=True (the reward does so by default)"
            )
        missing = [c.name for c in CLASSES if c.name not in scores]
        if missing:
            raise ValueError(f"Classifier output {i} has no score for {missing}; expected all 14 options")
        values = [float(scores[c.name]) for c in CLASSES]
        if not all(0.0 <= v <= 1.0 for v in values) or abs(sum(values) - 1.0) > 1e-3:
            raise ValueError(f"Classifier output {i}: 'scores' must be a distribution over the 14 options "
                             f"(each in [0, 1], summing to 1), got sum {sum(values):.4g} ({NO_ARTIFACTS}: "
                             f"{scores[NO_ARTIFACTS]!r})")
        return values


def _eye(n: int):
    import torch

    return torch.eye(n, dtype=torch.bool)
