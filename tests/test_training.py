"""Freezing / LoRA helpers and Stage-1 LLaVA assembly, on tiny models built from configs."""

from __future__ import annotations

import pytest
import torch

from synartifact_hf.training import (
    VLMPartsNotFoundError,
    assemble_llava,
    find_vlm_parts,
    load_projector_weights,
    lora_config_for,
    prepare_model_for_training,
    trainable_summary,
)

TEXT = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1)


def _qwen2_vl():
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    return Qwen2VLForConditionalGeneration(Qwen2VLConfig(
        text_config=dict(TEXT, bos_token_id=1, eos_token_id=2, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}),
        vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=4,
                           spatial_merge_size=2, temporal_patch_size=1),
        image_token_id=5, video_token_id=6,
    ))


def _paligemma():
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    return PaliGemmaForConditionalGeneration(PaliGemmaConfig(
        text_config=dict(TEXT, model_type="gemma", head_dim=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=16, patch_size=8, projection_dim=32),
        image_token_id=5, projection_dim=32,
    ))


def _llava_next():
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration

    return LlavaNextForConditionalGeneration(LlavaNextConfig(
        text_config=dict(TEXT, model_type="llama"),
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8),
        image_token_index=5, image_grid_pinpoints=[[16, 16]],
    ))


def _tiny_llava_model(path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path)


def _tiny_idefics3_model(path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(path)


EXPECTED_PATHS = {
    "llava": ("model.vision_tower", ("model.multi_modal_projector",), "model.language_model"),
    "idefics3": ("model.vision_model", ("model.connector",), "model.text_model"),
    "qwen2_vl": ("model.visual", ("model.visual.merger",), "model.language_model"),
    "paligemma": ("model.vision_tower", ("model.multi_modal_projector",), "model.language_model"),
    "llava_next": ("model.vision_tower", ("model.multi_modal_projector", "model.image_newline"),
                   "model.language_model"),
}


@pytest.fixture
def any_vlm(request, tiny_llava_path, tiny_idefics3_path):
    name = request.param
    builders = {
        "llava": lambda: _tiny_llava_model(tiny_llava_path),
        "idefics3": lambda: _tiny_idefics3_model(tiny_idefics3_path),
        "qwen2_vl": _qwen2_vl,
        "paligemma": _paligemma,
        "llava_next": _llava_next,
    }
    torch.manual_seed(0)
    return name, builders[name]()


ARCHS = list(EXPECTED_PATHS)


@pytest.mark.parametrize("any_vlm", ARCHS, indirect=True)
def test_find_vlm_parts_by_structure(any_vlm):
    name, model = any_vlm
    parts = find_vlm_parts(model)
    assert (parts.vision_tower_path, parts.projector_paths, parts.language_model_path) == EXPECTED_PATHS[name]
    assert parts.lm_head_path == "lm_head"
    # Every parameter is assigned to one of the three parts.
    assert {parts.part_of(n) for n, _ in model.named_parameters()} == {"vision_tower", "projector", "language_model"}


@pytest.mark.parametrize("any_vlm", ARCHS, indirect=True)
@pytest.mark.parametrize("mode", ["frozen", "full", "lora"])
def test_modes_set_the_right_parts_trainable(any_vlm, mode):
    name, model = any_vlm
    model, summary = prepare_model_for_training(model, mode)
    parts = find_vlm_parts(model)
    by_part: dict[str, set[bool]] = {}
    for param_name, param in model.named_parameters():
        by_part.setdefault(parts.part_of(param_name), set()).add(param.requires_grad)
    assert by_part["vision_tower"] == {False}
    if mode == "frozen":
        assert by_part["language_model"] == {False}
        assert summary.trainable_parts() == ["projector"]
    elif mode == "full":
        assert by_part["language_model"] == {True}
        assert summary.trainable_parts() == ["projector", "language_model"]
    else:
        assert type(model).__module__.startswith("peft.")
        lm_trainable = [n for n, p in model.named_parameters() if p.requires_grad and parts.part_of(n) == "language_model"]
        assert lm_trainable and all("lora_" in n for n in lm_trainable)
        assert summary.trainable_parts() == ["projector", "language_model"]
    # The projector module trains in every mode (LoRA: its modules_to_save copy).
    projector_trainable = [n for n, p in model.named_parameters() if p.requires_grad and parts.part_of(n) == "projector"]
    assert projector_trainable
    if mode != "lora" or name != "llava_next":
        assert summary.trainable["projector"] == summary.total["projector"] // (2 if mode == "lora" else 1)


def test_lora_targets_only_language_model(tiny_llava_path):
    model = _tiny_llava_model(tiny_llava_path)
    config = lora_config_for(model, r=4, target_modules=["q_proj", "v_proj"])
    model, _ = prepare_model_for_training(model, "lora", lora_config=config)
    adapted = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert adapted and all(".language_model." in n for n in adapted)
    assert all(n.endswith(("q_proj", "v_proj")) for n in adapted)
    # CLIP's attention has q_proj/v_proj too: they must not be adapted.
    assert not any("vision_tower" in n for n in adapted)
    with pytest.raises(ValueError, match="not linear layers of the language model"):
        lora_config_for(_tiny_llava_model(tiny_llava_path), target_modules=["nonexistent_proj"])


def test_unknown_architecture_clear_error():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**TEXT))
    with pytest.raises(VLMPartsNotFoundError, match=r"vision tower / projector.*LlamaForCausalLM.*model\.layers"):
        find_vlm_parts(model)
    with pytest.raises(ValueError, match="llm_mode must be one of"):
        prepare_model_for_training(_paligemma(), "half")


# ---------------------------------------------------------------------------------------------
# Stage-1 assembly


@pytest.fixture
def parts_for_assembly(tiny_llava_path, tmp_path):
    """A tiny CLIP tower, a tiny Llama, the tiny LLaVA's tokenizer, and a projector file written in the
    original LLaVA-1.5 key layout."""
    from transformers import AutoTokenizer, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_llava_path)
    torch.manual_seed(1)
    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, image_size=32, patch_size=8))
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    state = {
        "model.mm_projector.0.weight": torch.randn(64, 32),
        "model.mm_projector.0.bias": torch.randn(64),
        "model.mm_projector.2.weight": torch.randn(64, 64),
        "model.mm_projector.2.bias": torch.randn(64),
    }
    path = tmp_path / "mm_projector.bin"
    torch.save(state, path)
    return tower, lm, tokenizer, state, path


def test_assemble_llava_end_to_end(parts_for_assembly, tmp_path):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from synartifact_hf.instructions import render_prompt

    tower, lm, tokenizer, state, path = parts_for_assembly
    tower_weight = tower.embeddings.patch_embedding.weight.clone()
    lm_weight = lm.model.layers[0].self_attn.q_proj.weight.clone()
    model, processor = assemble_llava(tower, lm, path, tokenizer=tokenizer)
    projector = model.model.multi_modal_projector
    assert torch.equal(projector.linear_1.weight, state["model.mm_projector.0.weight"])
    assert torch.equal(projector.linear_1.bias, state["model.mm_projector.0.bias"])
    assert torch.equal(projector.linear_2.weight, state["model.mm_projector.2.weight"])
    assert torch.equal(projector.linear_2.bias, state["model.mm_projector.2.bias"])
    assert torch.equal(model.model.vision_tower.embeddings.patch_embedding.weight, tower_weight)
    assert torch.equal(model.model.language_model.layers[0].self_attn.q_proj.weight, lm_weight)
    assert model.config.vision_feature_layer == -2 and model.config.vision_feature_select_strategy == "default"

    # Pad-to-square like the original expand2square, and the Vicuna-v1 prompt.
    assert processor.image_processor.do_pad is True
    prompt = render_prompt(processor, "Any artifacts?")
    assert prompt.startswith("<s>A chat between a curious human") and prompt.endswith("USER: <image>\nAny artifacts? ASSISTANT:")

    image = Image.new("RGB", (48, 32), (200, 10, 10))
    inputs = processor(images=[image], text=[prompt], return_tensors="pt")
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == 16  # (32/8)^2 patches, CLS dropped
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape and torch.isfinite(logits).all()
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]

    # Round trip through save_pretrained / from_pretrained gives the same model.
    model.save_pretrained(tmp_path / "stage1")
    processor.save_pretrained(tmp_path / "stage1")
    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "stage1")
    reprocessor = AutoProcessor.from_pretrained(tmp_path / "stage1")
    assert torch.equal(reloaded.model.multi_modal_projector.linear_2.weight, state["model.mm_projector.2.weight"])
    again = reloaded.generate(**reprocessor(images=[image], text=[prompt], return_tensors="pt"),
                              max_new_tokens=4, do_sample=False)
    assert torch.equal(again, generated)


def test_chat_template_prompt_is_prefix_of_conversation(parts_for_assembly):
    """TRL splits prompt/completion by rendering both; the answer must follow the generation prompt."""
    from synartifact_hf.instructions import conversation

    tower, lm, tokenizer, _, path = parts_for_assembly
    _, processor = assemble_llava(tower, lm, path, tokenizer=tokenizer)
    messages = conversation("Q?", "1. No artifacts.")
    full = processor.apply_chat_template(messages, tokenize=False)
    prompt = processor.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert full == prompt + " 1. No artifacts.</s>"


def test_projector_from_safetensors_and_key_errors(parts_for_assembly, tmp_path):
    from safetensors.torch import save_file

    tower, lm, tokenizer, state, _ = parts_for_assembly
    st_path = tmp_path / "proj.safetensors"
    save_file({k.replace("model.", "", 1): v for k, v in state.items()}, str(st_path))  # "mm_projector.0.weight"
    weights = load_projector_weights(st_path)
    assert torch.equal(weights["linear_1.weight"], state["model.mm_projector.0.weight"])

    bad = dict(state, **{"model.mm_projector.4.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"Unexpected keys in the projector weights: \['model.mm_projector.4.weight'\]"):
        load_projector_weights(bad)
    missing = {k: v for k, v in state.items() if ".2." not in k}
    with pytest.raises(ValueError, match="Missing projector weights.*linear_2.bias"):
        load_projector_weights(missing)
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        load_projector_weights(tmp_path / "nope.bin")

    # A pickle that is not plain tensors is refused by weights_only=True.
    torch.save({"model.mm_projector.0.weight": _NotATensor()}, tmp_path / "evil.bin")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_projector_weights(tmp_path / "evil.bin")

    wrong = dict(state, **{"model.mm_projector.0.weight": torch.randn(64, 48)})
    with pytest.raises(ValueError, match=r"linear_1.weight has shape \(64, 48\).*need \(64, 32\)"):
        assemble_llava(tower, lm, wrong, tokenizer=tokenizer)


class _NotATensor:
    """Pickled by reference: torch.load(weights_only=True) must refuse to import it."""


def test_trainable_summary_counts(tiny_llava_path):
    model = _tiny_llava_model(tiny_llava_path)
    model, summary = prepare_model_for_training(model, "frozen")
    total = sum(p.numel() for p in model.parameters())
    assert sum(summary.total.values()) == total
    assert summary.trainable["projector"] == sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    assert "projector:" in summary.describe()
    assert trainable_summary(model).to_dict() == summary.to_dict()


def test_assemble_llava_from_checkpoint_folders(parts_for_assembly, tmp_path):
    """The user path: a full CLIP checkpoint (as openai/clip-vit-large-patch14-336 is) and a causal LM
    folder with its tokenizer, loaded by path."""
    from transformers import CLIPConfig, CLIPModel

    tower, lm, tokenizer, state, path = parts_for_assembly
    torch.manual_seed(2)
    clip = CLIPModel(CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=99),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    ))
    clip.save_pretrained(tmp_path / "clip")
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    model, processor = assemble_llava(tmp_path / "clip", tmp_path / "lm", path)
    assert torch.equal(model.model.vision_tower.embeddings.patch_embedding.weight,
                       clip.vision_model.embeddings.patch_embedding.weight)
    assert torch.equal(model.lm_head.weight, lm.lm_head.weight)
    assert torch.equal(model.model.multi_modal_projector.linear_1.weight, state["model.mm_projector.0.weight"])
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_id
