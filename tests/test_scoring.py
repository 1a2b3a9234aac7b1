"""Per-option scores: the shared-prefix computation equals 14 full forward passes, and the numbers
form a distribution. Tiny random-weight models; tolerances are for float32 on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from synartifact_hf.scoring import (
    OptionScorer,
    continuation_texts,
    encode_continuations,
    option_answers,
    scores_from_logprobs,
)
from synartifact_hf.taxonomy import NAMES

# Mean log-probs from the cached path vs. the slow reference, float32: observed ~1e-6.
ATOL = 1e-4


@pytest.fixture(scope="module", params=["tiny_llava_path", "tiny_idefics3_path"])
def loaded(request):
    path = request.getfixturevalue(request.param)
    return AutoModelForImageTextToText.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)


def _images():
    rng = np.random.RandomState(0)
    return [Image.fromarray(rng.randint(0, 255, (30 + 9 * i, 50, 3), dtype=np.uint8)) for i in range(2)]


def _batch(processor, instructions):
    prompts = [continuation_texts(processor, instruction)[0] for instruction in instructions]
    return processor(images=[[im] for im in _images()], text=prompts, return_tensors="pt", padding=True)


def _reference(model, processor, instruction, image, continuation_ids):
    """The slow way: one full forward (image + prompt + continuation) per option, no cache."""
    prompt, _ = continuation_texts(processor, instruction)
    prefix = processor(images=[[image]], text=[prompt], return_tensors="pt")
    prefix_len = prefix["input_ids"].shape[1]
    out = []
    for ids in continuation_ids:
        inputs = dict(prefix)
        inputs["input_ids"] = torch.cat([prefix["input_ids"], torch.tensor([ids])], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        with torch.no_grad():
            logits = model(**inputs).logits[0, prefix_len - 1: -1].float()
        out.append(torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids)[:, None]).mean())
    return torch.stack(out)


def test_continuations_follow_the_chat_template(loaded):
    _, processor = loaded
    prompt, continuations = continuation_texts(processor)
    assert continuations[0].strip() == "1. Illegible letters." == option_answers()[0]
    assert len(continuations) == len(NAMES) == 14
    ids = encode_continuations(processor.tokenizer, prompt, continuations)
    prompt_ids = processor.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for text, cont in zip(continuations, ids):
        assert processor.tokenizer(prompt + text, add_special_tokens=False)["input_ids"] == prompt_ids + cont


def test_shared_prefix_matches_14_full_passes(loaded):
    model, processor = loaded
    instructions = [None, "Which artifacts do you see?"]  # different prompt lengths -> left padding
    inputs = _batch(processor, instructions)
    assert inputs["attention_mask"][1, 0] == 0
    per_instruction = {}
    for instruction in set(instructions):
        prompt, continuations = continuation_texts(processor, instruction)
        per_instruction[instruction] = encode_continuations(processor.tokenizer, prompt, continuations)
    for row, instruction in enumerate(instructions):
        slow = _reference(model, processor, instruction, _images()[row], per_instruction[instruction])
        for strategy in ("packed", "expanded"):
            scorer = OptionScorer(model, per_instruction[instruction], processor.tokenizer.pad_token_id,
                                  strategy=strategy)
            fast = scorer.from_prefix(*scorer.prefix(inputs), rows=[row])[0]
            torch.testing.assert_close(fast, slow, atol=ATOL, rtol=0, msg=lambda m, s=strategy: f"{s}: {m}")


@pytest.mark.parametrize("strategy", ["packed", "expanded"])
def test_generate_prefix_reuse_equals_a_fresh_prefill_and_one_batched_pass(loaded, strategy):
    model, processor = loaded
    inputs = _batch(processor, [None, "Which artifacts?"])
    prompt, continuations = continuation_texts(processor)
    scorer = OptionScorer(model, encode_continuations(processor.tokenizer, prompt, continuations),
                          processor.tokenizer.pad_token_id, strategy=strategy)
    assert OptionScorer(model, scorer.ids.tolist(), 0).strategy == "packed"  # auto on sdpa/eager Llama
    calls = []
    hook = model.register_forward_hook(lambda module, args, kwargs_out: calls.append(1))
    try:
        direct = scorer(inputs)
    finally:
        hook.remove()
    assert len(calls) == 2  # one prefill for the batch, one pass for all 2 x 14 continuations
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, return_dict_in_generate=True, output_logits=True)
    cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
    length_before = cache.get_seq_length()
    reused = scorer.from_prefix(cache, out.logits[0], inputs["attention_mask"])
    assert cache.get_seq_length() == length_before  # the cache is read, not modified
    torch.testing.assert_close(reused, direct, atol=1e-5, rtol=0)
    # A tiny cache budget forces one image per chunk: same numbers.
    scorer.cache_budget_bytes = 1
    torch.testing.assert_close(scorer(inputs), direct, atol=1e-5, rtol=0)


def test_scores_are_a_distribution_in_taxonomy_order():
    logprobs = torch.tensor([[-1.0] * 13 + [-0.5], [-2.0] * 14])
    first, second = scores_from_logprobs(logprobs)
    assert list(first) == list(NAMES)
    assert sum(first.values()) == pytest.approx(1.0) and sum(second.values()) == pytest.approx(1.0)
    assert max(first, key=first.get) == "No artifacts"
    assert first["No artifacts"] == pytest.approx(np.exp(-0.5) / (13 * np.exp(-1.0) + np.exp(-0.5)))
    assert second["Localized blur"] == pytest.approx(1 / 14)


def test_scorer_rejects_wrong_number_of_options(loaded):
    model, processor = loaded
    with pytest.raises(ValueError, match="Expected 14 continuations"):
        OptionScorer(model, [[1, 2]] * 3, processor.tokenizer.pad_token_id)
    with pytest.raises(ValueError, match="strategy"):
        OptionScorer(model, [[1, 2]] * 14, processor.tokenizer.pad_token_id, strategy="fast")
