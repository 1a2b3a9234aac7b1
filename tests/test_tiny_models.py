"""The tiny checkpoints load back through the Auto classes and have the wiring later code relies on."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from synartifact_hf.instructions import conversation, format_classification_answer, render_prompt
from synartifact_hf.tiny_models import build_tiny_llava, training_text


@pytest.fixture(params=["tiny_llava_path", "tiny_idefics3_path"])
def tiny_path(request):
    return request.getfixturevalue(request.param)


def test_loads_with_auto_classes_safetensors_and_left_padding(tiny_path):
    assert (tiny_path / "model.safetensors").exists()
    assert not list(tiny_path.glob("*.bin"))
    model = AutoModelForImageTextToText.from_pretrained(tiny_path)
    processor = AutoProcessor.from_pretrained(tiny_path)
    assert processor.tokenizer.padding_side == "left"
    assert model.generation_config.pad_token_id == processor.tokenizer.pad_token_id
    image = Image.new("RGB", (40, 30), (200, 10, 10))
    prompts = [render_prompt(processor), render_prompt(processor, "Short one.")]
    inputs = processor(images=[[image], [image]], text=prompts, return_tensors="pt", padding=True)
    assert inputs["attention_mask"][1, 0] == 0  # left padded
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2


def test_tokenizer_round_trips_answers_and_covers_the_instruction(tiny_path):
    tokenizer = AutoProcessor.from_pretrained(tiny_path).tokenizer
    for text in training_text():
        ids = tokenizer(text, add_special_tokens=False).input_ids
        assert tokenizer.decode(ids) == text
    answer = format_classification_answer(["Duplicated components", "Omitted components"])
    assert tokenizer.decode(tokenizer(answer, add_special_tokens=False).input_ids) == answer


def test_chat_template_marks_the_assistant_answer(tiny_path):
    processor = AutoProcessor.from_pretrained(tiny_path)
    answer = "1. No artifacts."
    # The tokenizer renders the processor's template without expanding images (mask positions only).
    out = processor.tokenizer.apply_chat_template(
        conversation("Look.", answer), chat_template=processor.chat_template, tokenize=True,
        return_dict=True, return_assistant_tokens_mask=True,
    )
    mask = out["assistant_masks"]
    ids = out["input_ids"]
    marked = processor.tokenizer.decode([i for i, m in zip(ids, mask) if m])
    # The space after "ASSISTANT:" belongs to the answer's first token (byte-level BPE), as in generation.
    assert marked.strip() == answer + processor.tokenizer.eos_token


def test_llava_wiring_matches_llava_1_5(tiny_llava_path):
    config = json.loads((tiny_llava_path / "config.json").read_text())
    proc = json.loads((tiny_llava_path / "processor_config.json").read_text())
    assert config["vision_feature_select_strategy"] == proc["vision_feature_select_strategy"] == "default"
    assert proc["num_additional_image_tokens"] == 1
    assert config["vision_config"]["model_type"] == "clip_vision_model"
    assert config["text_config"]["model_type"] == "llama"


def test_same_seed_same_weights_and_overrides(tmp_path):
    from safetensors.torch import load_file

    a = load_file(build_tiny_llava(tmp_path / "a", seed=3) / "model.safetensors")
    b = load_file(build_tiny_llava(tmp_path / "b", seed=3) / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = build_tiny_llava(tmp_path / "c", num_layers=1, image_size=48)
    config = json.loads((c / "config.json").read_text())
    assert config["text_config"]["num_hidden_layers"] == 1 and config["vision_config"]["image_size"] == 48
    with pytest.raises(TypeError, match="unknown config overrides"):
        build_tiny_llava(tmp_path / "d", layers=3)
