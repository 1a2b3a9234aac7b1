"""ArtifactReward: paper Eq. 4 end to end on the real artifact-classification pipeline (tiny random
LLaVA), checked against a direct computation with ``bert_score``; likelihood mode; inputs; bounds;
empty/unparseable answers; pickling; errors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from synartifact_hf.bertscore import minilm_path
from synartifact_hf.reward import PHRASES, ArtifactReward, to_pil_images
from synartifact_hf.taxonomy import NO_ARTIFACTS, NO_ARTIFACTS_ID

TOL = 1e-5
ALPHA = 1 / 13
CALL = {"max_new_tokens": 12}


@pytest.fixture(scope="module")
def bert_scorer():
    from bert_score import BERTScorer

    return BERTScorer(model_type=str(minilm_path()), num_layers=6, device="cpu")


@pytest.fixture(scope="module")
def reward(tiny_llava_path):
    return ArtifactReward(str(tiny_llava_path), classifier_kwargs=CALL, batch_size=2, device="cpu")


def _images(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 24, 40, generator=g)


def _eq4_with_bert_score(bert_scorer, answer: str, alpha: float, beta: float, component: int = 2) -> float:
    """Eq. 4 computed directly: one bert_score call per (answer, phrase) pair (no batch padding)."""
    if not answer.strip():
        return math.nan  # bert_score 0.3.13 crashes on "" under transformers 5; the reward defines it
    s = [min(max(bert_scorer.score([answer], [p])[component].item(), 0.0), 1.0) for p in PHRASES]
    return s[NO_ARTIFACTS_ID] - alpha * sum(s[:NO_ARTIFACTS_ID]) + beta


def test_end_to_end_tiny_llava_matches_eq4_with_bert_score(reward, tiny_llava_path, bert_scorer):
    from synartifact_hf.pipeline import load_pipeline

    images = _images()
    rewards, info = reward(images, ["a photo of a cat"] * 3, [{}] * 3)
    assert rewards.dtype == torch.float32 and rewards.shape == (3,) and torch.isfinite(rewards).all()
    # The answers are the pipeline's own, on the same images.
    direct = load_pipeline(str(tiny_llava_path))(to_pil_images(images), **CALL)
    assert info["answers"] == [d["generated_text"] for d in direct]
    assert info["labels"] == [d["labels"] for d in direct]
    assert any(a.strip() for a in info["answers"])
    for r, answer in zip(rewards.tolist(), info["answers"]):
        expected = _eq4_with_bert_score(bert_scorer, answer, ALPHA, 1.0)
        assert r == pytest.approx(0.0 if math.isnan(expected) else expected, abs=TOL)
    assert info["beta"] == 1.0 and info["alpha"] == pytest.approx(ALPHA)
    assert len(info["artifact_terms"][0]) == 13 and info["component"] == "f1"


def test_known_answers_match_bert_score_for_each_component(bert_scorer):
    answers = ["1. No artifacts.", "1. Duplicated components.\n2. Omitted components.",
               "1. Other artifacts: the dog has five legs.", "A red apple on a table."]
    for index, component in enumerate(("precision", "recall", "f1")):
        r = ArtifactReward(component=component, alpha=0.3, beta=4.0, device="cpu")
        rewards, info = r.rewards_from_answers(answers)
        expected = [_eq4_with_bert_score(bert_scorer, a, 0.3, 4.0, index) for a in answers]
        assert rewards.double().numpy() == pytest.approx(expected, abs=TOL)
        assert info["num_clipped"] == 0


def test_input_formats_give_the_same_rewards(reward):
    images = _images(2, seed=1)
    uint8 = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    pil = [Image.fromarray(a) for a in uint8]
    r_float, i_float = reward(images, None, None)
    r_half, _ = reward(images.half(), None, None)
    r_np, _ = reward(uint8, None, None)
    r_pil, i_pil = reward(pil, None, None)
    r_u8t, _ = reward(torch.from_numpy(uint8), None, None)
    assert i_float["answers"] == i_pil["answers"]
    for other in (r_np, r_pil, r_u8t):
        assert torch.allclose(r_float, other, atol=TOL)
    assert len(r_half) == 2


def test_likelihood_mode_from_pipeline_scores(tiny_llava_path):
    from synartifact_hf.pipeline import load_pipeline

    clf = load_pipeline(str(tiny_llava_path))
    reward = ArtifactReward(clf, mode="likelihood", alpha=0.5, classifier_kwargs={"max_new_tokens": 2})
    rewards, info = reward(_images(2, seed=2), ["p", "q"], None)
    assert reward.beta == 0.5 and reward.bounds == (0.0, 1.5)
    for r, scores in zip(rewards.tolist(), info["scores"]):
        artifact = sum(v for k, v in scores.items() if k != NO_ARTIFACTS)
        assert r == pytest.approx(scores[NO_ARTIFACTS] - 0.5 * artifact + 0.5, abs=1e-6)
        assert r == pytest.approx(1.5 * scores[NO_ARTIFACTS], abs=1e-6)  # scores sum to 1
        assert 0.0 <= r <= 1.5
    assert info["mode"] == "likelihood" and info["num_empty"] == 0


class FixedAnswers:
    """A picklable classifier stand-in with the pipeline's output contract: answer i for image i."""

    def __init__(self, answers):
        self.answers = list(answers)

    def __call__(self, images, **kwargs):
        return [{"generated_text": a, "labels": [], "has_artifacts": None, "parse_issues": []}
                for a in self.answers[: len(images)]]


def test_eq4_arithmetic_bounds_and_pickling():
    answers = ["1. No artifacts.", "1. Duplicated components.", "1. Localized blur.\n2. Abnormal texture.", ""]
    reward = ArtifactReward(FixedAnswers(answers), device="cpu")
    images = [Image.new("RGB", (8, 8))] * 4
    rewards, info = reward(images, None, None)
    lo, hi = reward.bounds
    assert (lo, hi) == (0.0, 2.0) and reward.beta == 1.0
    assert all(lo <= r <= hi for r in rewards.tolist())
    assert rewards[0] > rewards[1] and rewards[0] > rewards[2] and rewards[3] == lo
    # Eq. 4 from the logged terms.
    for r, s0, s_sum, empty in zip(rewards.tolist(), info["no_artifacts_term"], info["artifact_sum"], info["empty"]):
        if not empty:
            assert r == pytest.approx(s0 - ALPHA * s_sum + 1.0, abs=1e-6)
    again = pickle.loads(pickle.dumps(reward))
    assert torch.allclose(again(images, None, None)[0], rewards, atol=TOL)
    custom = ArtifactReward(FixedAnswers(answers), alpha=0.5, beta=7.0, empty_reward=-1.0, device="cpu",
                            scorer=reward.scorer)
    r2, i2 = custom(images, None, None)
    assert r2[3] == -1.0
    assert r2[:3].double().numpy() == pytest.approx(
        [s0 - 0.5 * s + 7.0 for s0, s in zip(i2["no_artifacts_term"][:3], i2["artifact_sum"][:3])], abs=1e-6)


def test_empty_and_unparseable_answers_are_defined_and_counted():
    answers = ["", "   \n", "qwerty zxcv", "1. No artifacts."]
    rewards, info = ArtifactReward(device="cpu").rewards_from_answers(answers)
    assert torch.isfinite(rewards).all()
    assert rewards[:2].tolist() == [0.0, 0.0]
    assert info["empty"] == [True, True, False, False] and info["num_empty"] == 2
    assert info["unparseable"] == [False, False, True, False] and info["num_unparseable"] == 1
    assert rewards[2] > 0
    strict, info2 = ArtifactReward(unparseable_as_empty=True, device="cpu").rewards_from_answers(answers)
    assert strict[2] == 0.0 and strict[3].item() == pytest.approx(rewards[3].item(), abs=TOL)


def test_baseline_rescaling_is_an_affine_map_of_the_reward():
    answers = ["1. No artifacts.", "1. Duplicated components.", "A cat on a sofa.", "1. Localized blur."]
    raw, _ = ArtifactReward(device="cpu").rewards_from_answers(answers)
    scaled_reward = ArtifactReward(baseline="taxonomy", device="cpu")
    scaled, info = scaled_reward.rewards_from_answers(answers)
    b = scaled_reward._baseline_triple()[2]
    assert 0.05 < b < 0.5
    lo, hi = scaled_reward.term_bounds
    assert lo == pytest.approx(-b / (1 - b)) and hi == 1.0
    assert scaled_reward.beta == pytest.approx(13 * ALPHA - lo) and scaled_reward.bounds[0] == pytest.approx(0.0)
    # alpha = 1/13: r' = (r - 1) / (1 - b) + beta'
    assert scaled.double().numpy() == pytest.approx(((raw.double() - 1) / (1 - b) + scaled_reward.beta).numpy(), abs=1e-5)
    fixed = ArtifactReward(baseline=(0.1, 0.2, 0.3), component="recall", device="cpu")
    assert fixed.term_bounds == (pytest.approx(-0.25), 1.0)
    with pytest.raises(FileNotFoundError, match="ships no baseline"):
        ArtifactReward(baseline="bert_score", device="cpu").rewards_from_answers(["a"])


def test_pickle_is_cheap_after_use(reward):
    reward(_images(1), None, None)
    blob = pickle.dumps(reward)
    assert len(blob) < 20_000
    clone = pickle.loads(blob)
    assert clone._pipeline is None and clone.scorer._encoder is None
    assert torch.allclose(clone(_images(1), None, None)[0], reward(_images(1), None, None)[0], atol=TOL)


def test_bad_inputs_raise_clear_errors(reward):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        reward(_images(1) * 2 - 1, None, None)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        reward(torch.rand(3, 8, 8), None, None)
    with pytest.raises(TypeError, match=r"images\[1\] is str"):
        reward([Image.new("RGB", (4, 4)), "x.png"], None, None)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):  # floats follow the pipeline's rule: [0, 1]
        reward(np.full((1, 4, 4, 3), 255.0, dtype=np.float32), None, None)
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        reward(_images(2), ["only one"], None)
    with pytest.raises(ValueError, match="mode"):
        ArtifactReward(mode="clip")
    with pytest.raises(ValueError, match="alpha"):
        ArtifactReward(alpha=-1)
    with pytest.raises(ValueError, match="component"):
        ArtifactReward(component="f2")
    with pytest.raises(ValueError, match="no classifier"):
        ArtifactReward()(_images(1), None, None)
    with pytest.raises(ValueError, match="return_scores=True"):
        ArtifactReward(FixedAnswers(["1. No artifacts."]), mode="likelihood")([Image.new("RGB", (4, 4))], None, None)
    with pytest.raises(ValueError, match="distribution"):
        ArtifactReward(mode="likelihood").rewards_from_outputs(
            [{"generated_text": "x", "scores": {name: 0.5 for name in PHRASES}}])


def test_answers_that_are_not_text_and_answers_in_likelihood_mode_are_refused():
    message = [{"role": "assistant", "content": "1. No artifacts."}]  # a chat message list, not the answer text
    for mode in ("bertscore", "likelihood"):
        with pytest.raises(ValueError, match=r"output 1: 'generated_text' must be the answer as a string.*got list"):
            ArtifactReward(mode=mode, device="cpu").rewards_from_outputs(
                [{"generated_text": "1. No artifacts."}, {"generated_text": message}])
    # likelihood mode scores option likelihoods, which answer texts do not carry: the mode is what is wrong
    with pytest.raises(ValueError, match=r"needs mode='bertscore'; this reward has mode='likelihood'"):
        ArtifactReward(mode="likelihood").rewards_from_answers(["1. No artifacts."])


def test_concurrent_first_calls_from_a_thread_pool():
    """DDPO trainers may compute rewards in a thread pool; lazy loading must not race."""
    from concurrent.futures import ThreadPoolExecutor

    answers = ["1. No artifacts.", "1. Localized blur."]
    images = [Image.new("RGB", (8, 8))] * 2
    expected = ArtifactReward(FixedAnswers(answers), device="cpu")(images, None, None)[0]
    fresh = ArtifactReward(FixedAnswers(answers), device="cpu")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: fresh(images, None, None)[0], range(4)))
    assert all(torch.allclose(r, expected, atol=TOL) for r in results)
