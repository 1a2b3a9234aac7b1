"""Stage-1 LLaVA-1.5 in transformers format: CLIP tower + language model + the released projector.

The paper's best classifier starts from LLaVA-1.5's *Stage-1* weights (feature alignment only: the
projector trained on captions, the vision tower and the LLM untouched). The Hub has the Stage-2
(instruction-tuned) LLaVA-1.5 in transformers format but no Stage-1 checkpoint. The original release
ships the Stage-1 projector alone (``liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5``,
file ``mm_projector.bin``); :func:`assemble_llava` puts it together with
``openai/clip-vit-large-patch14-336`` and ``lmsys/vicuna-7b-v1.5``::

    model, processor = assemble_llava(
        "openai/clip-vit-large-patch14-336",
        "lmsys/vicuna-7b-v1.5",
        "mm_projector.bin",              # hf_hub_download(<the pretrain repo>, "mm_projector.bin")
        dtype=torch.bfloat16,
    )
    model.save_pretrained("llava-v1.5-7b-stage1"); processor.save_pretrained("llava-v1.5-7b-stage1")

What matches the original LLaVA-1.5: the MLP projector (linear, GELU, linear) with bias; the
penultimate CLIP layer's patch features without the CLS token (``vision_feature_layer=-2``,
``"default"`` strategy); images padded to a square with the CLIP mean color, then resized to 336
(``LlavaImageProcessorPil(do_pad=True)``, the original ``expand2square``); the Vicuna-v1 conversation
format (system line, ``USER:`` / ``ASSISTANT:``, ``</s>`` after each answer) with ``{% generation %}``
markers for assistant-only loss; the unk token as padding. What differs: transformers represents the
image by ``<image>`` placeholder tokens in the text (a token added to the vocabulary; its embedding row
is never used because the placeholders are replaced by image features).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "LLAVA_15_CHAT_TEMPLATE",
    "LLAVA_15_SYSTEM",
    "assemble_llava",
    "load_projector_weights",
]

LLAVA_15_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)

# Vicuna-v1 ("conv_vicuna_v1" in the LLaVA repository): "<s>{system} USER: <image>\n{q} ASSISTANT: {a}</s>".
# The assistant text starts after "ASSISTANT:" with a space, inside the generation block, so a prompt
# rendered with add_generation_prompt=True is an exact prefix of the full conversation.
LLAVA_15_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] %}{% set messages = messages[1:] %}"
    "{% else %}{% set system = '" + LLAVA_15_SYSTEM.replace("'", "\\'") + "' %}{% endif %}"
    "{{ bos_token }}{{ system }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %} USER: "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% elif message['role'] == 'assistant' %} ASSISTANT:{% generation %} "
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% endif %}{{ eos_token }}{% endgeneration %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)

# Original LLaVA: model.mm_projector = Sequential(Linear, GELU, Linear) -> indices 0 and 2.
_PROJECTOR_PREFIXES = ("model.mm_projector.", "mm_projector.", "model.multi_modal_projector.",
                       "multi_modal_projector.")
_PROJECTOR_LAYERS = {"0": "linear_1", "2": "linear_2", "linear_1": "linear_1", "linear_2": "linear_2"}


def load_projector_weights(source) -> dict:
    """Read a LLaVA projector state dict and return it under transformers names.

    ``source`` is a path to the original ``mm_projector.bin`` (read with
    ``torch.load(weights_only=True)``, which refuses pickled code), a ``.safetensors`` file, or a mapping
    of tensors. Keys ``model.mm_projector.{0,2}.{weight,bias}`` (also without ``model.``, or already
    ``multi_modal_projector.linear_{1,2}.*``) become ``linear_1.*`` / ``linear_2.*``.

    Raises:
        FileNotFoundError / ValueError naming the file and the unexpected or missing keys.
    """
    import torch

    where = "the projector weights"
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        path = Path(os.fspath(source))
        where = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"Projector weights not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
            except Exception as err:  # pickle errors come in many types
                raise ValueError(
                    f"Cannot read {path} as a PyTorch state dict with weights_only=True ({err}); expected the "
                    "original LLaVA mm_projector.bin or a .safetensors file"
                ) from err
        if not isinstance(state, Mapping):
            raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict of tensors")
    out, unexpected = {}, []
    for key, value in state.items():
        prefix = next((p for p in _PROJECTOR_PREFIXES if key.startswith(p)), None)
        rest = key[len(prefix):] if prefix else key
        layer, _, kind = rest.partition(".")
        if layer not in _PROJECTOR_LAYERS or kind not in ("weight", "bias") or not isinstance(value, torch.Tensor):
            unexpected.append(key)
            continue
        out[f"{_PROJECTOR_LAYERS[layer]}.{kind}"] = value
    if unexpected:
        raise ValueError(
            f"Unexpected keys in {where}: {sorted(unexpected)[:8]}; expected model.mm_projector.0.weight/bias and "
            "model.mm_projector.2.weight/bias (the 2-layer MLP projector of LLaVA-1.5, 'mlp2x_gelu')"
        )
    missing = sorted({"linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"} - set(out))
    if missing:
        raise ValueError(f"Missing projector weights in {where}: {missing} (after mapping to transformers names)")
    return out


def _load_vision_tower(vision_tower, dtype):
    from transformers import CLIPVisionModel

    if isinstance(vision_tower, (str, os.PathLike)):
        return CLIPVisionModel.from_pretrained(os.fspath(vision_tower), dtype=dtype, use_safetensors=True)
    if not hasattr(vision_tower, "config") or getattr(vision_tower.config, "model_type", None) != "clip_vision_model":
        raise TypeError(
            f"vision_tower must be a path/hub id of a CLIP model or a CLIPVisionModel, got {type(vision_tower).__name__}"
        )
    return vision_tower


def _load_language_model(language_model, tokenizer, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(language_model, (str, os.PathLike)):
        path = os.fspath(language_model)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        model = language_model
        if tokenizer is None:
            raise ValueError("Pass tokenizer= when language_model is a model object (it has no tokenizer attached)")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer))
    for attr in ("model", "lm_head"):
        if not hasattr(model, attr):
            raise TypeError(
                f"language_model must be a causal LM with .model and .lm_head (e.g. LlamaForCausalLM), got "
                f"{type(model).__name__}"
            )
    return model, tokenizer


def assemble_llava(
    vision_tower,
    language_model,
    projector_weights,
    *,
    tokenizer=None,
    image_processor=None,
    chat_template: str | None = LLAVA_15_CHAT_TEMPLATE,
    image_token: str = "<image>",
    vision_feature_layer: int = -2,
    vision_feature_select_strategy: str = "default",
    projector_hidden_act: str = "gelu",
    pad_to_square: bool = True,
    dtype=None,
):
    """Build a ``LlavaForConditionalGeneration`` and its ``LlavaProcessor`` from the three parts.

    Args:
        vision_tower: a CLIP checkpoint (path or hub id, e.g. ``"openai/clip-vit-large-patch14-336"``)
            or a ``CLIPVisionModel``.
        language_model: a causal LM checkpoint (e.g. ``"lmsys/vicuna-7b-v1.5"``) or a model object
            (then pass ``tokenizer``).
        projector_weights: the original ``mm_projector.bin``, a ``.safetensors`` file, or a state dict
            (see :func:`load_projector_weights`).
        tokenizer: a tokenizer or its path; default: the language model's.
        image_processor: default ``LlavaImageProcessorPil`` at the tower's resolution with CLIP's
            mean/std and ``do_pad=pad_to_square``.
        chat_template: the processor's chat template; default LLaVA-1.5's Vicuna-v1 format.
        dtype: dtype to load checkpoints in; the projector is cast to the language model's dtype.

    Returns:
        ``(model, processor)``; the modules of the parts are reused, not copied.

    The projector shapes are checked against the parts (``linear_1``: vision hidden -> text hidden,
    ``linear_2``: text hidden -> text hidden); a mismatch raises ``ValueError`` naming both.
    """
    tower = _load_vision_tower(vision_tower, dtype)
    lm, tokenizer = _load_language_model(language_model, tokenizer, dtype)
    weights = load_projector_weights(projector_weights)
    _check_projector_shapes(weights, tower.config, lm.config)
    image_token_id = _add_special_tokens(tokenizer, lm, image_token)
    config = _llava_config(tower.config, lm.config, image_token_id, tokenizer.pad_token_id,
                           projector_hidden_act=projector_hidden_act, vision_feature_layer=vision_feature_layer,
                           vision_feature_select_strategy=vision_feature_select_strategy)
    model = _join_parts(config, tower, lm, weights)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    processor = _llava_processor(tower.config, tokenizer, image_processor, chat_template=chat_template,
                                 image_token=image_token, pad_to_square=pad_to_square,
                                 vision_feature_select_strategy=vision_feature_select_strategy)
    return model, processor


def _check_projector_shapes(weights: dict, vcfg, tcfg) -> None:
    """``linear_1``: vision hidden -> text hidden, ``linear_2``: text hidden -> text hidden."""
    expected = {
        "linear_1.weight": (tcfg.hidden_size, vcfg.hidden_size),
        "linear_1.bias": (tcfg.hidden_size,),
        "linear_2.weight": (tcfg.hidden_size, tcfg.hidden_size),
        "linear_2.bias": (tcfg.hidden_size,),
    }
    for key, shape in expected.items():
        if tuple(weights[key].shape) != shape:
            raise ValueError(
                f"Projector {key} has shape {tuple(weights[key].shape)}, but the vision tower (hidden "
                f"{vcfg.hidden_size}) and language model (hidden {tcfg.hidden_size}) need {shape}"
            )


def _add_special_tokens(tokenizer, lm, image_token: str) -> int:
    """Add the image placeholder and a pad token (original LLaVA v1 pads with unk), growing the language
    model's embeddings when the vocabulary grew; returns the image token's id."""
    added = tokenizer.add_special_tokens({"additional_special_tokens": [image_token]},
                                         replace_additional_special_tokens=False) if image_token not in tokenizer.get_vocab() else 0
    if tokenizer.pad_token is None:
        if tokenizer.unk_token is not None:
            tokenizer.pad_token = tokenizer.unk_token
        else:
            added += tokenizer.add_special_tokens({"pad_token": "<pad>"})
    if added or len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
        lm.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, mean_resizing=False)
    return tokenizer.convert_tokens_to_ids(image_token)


def _llava_config(vcfg, tcfg, image_token_id: int, pad_token_id: int, *, projector_hidden_act: str,
                  vision_feature_layer: int, vision_feature_select_strategy: str):
    from transformers import LlavaConfig

    config = LlavaConfig(
        vision_config=vcfg.to_dict(),
        text_config=tcfg.to_dict(),
        image_token_id=image_token_id,
        projector_hidden_act=projector_hidden_act,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
        image_seq_length=(vcfg.image_size // vcfg.patch_size) ** 2,
        multimodal_projector_bias=True,
        tie_word_embeddings=getattr(tcfg, "tie_word_embeddings", False),
    )
    config.pad_token_id = pad_token_id
    config.text_config.pad_token_id = pad_token_id
    return config


def _join_parts(config, tower, lm, weights: dict):
    """The LLaVA model holding ``tower``, ``lm``'s modules and the projector (in the LM's dtype)."""
    import torch
    from transformers import LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    # Build the shell on the meta device (no 7B random init), then put the real parts in.
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = tower
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    projector = LlavaMultiModalProjector(config)
    lm_dtype = lm.get_input_embeddings().weight.dtype
    projector.load_state_dict({k: v.to(lm_dtype) for k, v in weights.items()}, strict=True)
    model.model.multi_modal_projector = projector.to(lm_dtype)
    left_on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left_on_meta:
        raise RuntimeError(f"Assembly left uninitialized tensors: {left_on_meta[:5]}")
    if getattr(lm, "generation_config", None) is not None:
        model.generation_config = lm.generation_config
    return model.eval()


def _llava_processor(vcfg, tokenizer, image_processor, *, chat_template, image_token: str, pad_to_square: bool,
                     vision_feature_select_strategy: str):
    from transformers import LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    if image_processor is None:
        size = vcfg.image_size
        image_processor = LlavaImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_pad=pad_to_square
        )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vcfg.patch_size,
        vision_feature_select_strategy=vision_feature_select_strategy,
        chat_template=chat_template,
        image_token=image_token,
        # The CLS token is in the tower's output; "default" drops it, "full" keeps it.
        num_additional_image_tokens=1,
    )
