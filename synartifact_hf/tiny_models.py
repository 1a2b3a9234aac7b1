"""Tiny vision-language checkpoints with random weights, built locally for tests, demos and benchmarks.

Nothing here downloads anything: each builder makes a config, initializes the model with a fixed seed,
trains a byte-level BPE tokenizer with ``tokenizers`` on the SynArtifact instruction and every answer
word, wraps everything in the architecture's real processor with a chat template, and saves it with
``save_pretrained`` (safetensors). The folder then loads like any Hub checkpoint with
``AutoModelForImageTextToText.from_pretrained`` + ``AutoProcessor.from_pretrained`` or
``pipeline("artifact-classification", model=folder)``.

Random weights give random answers: these checkpoints test mechanics (shapes, batching, parsing,
saving), never accuracy.

>>> import tempfile
>>> from transformers import AutoModelForImageTextToText, AutoProcessor
>>> path = build_tiny_llava(tempfile.mkdtemp())
>>> type(AutoModelForImageTextToText.from_pretrained(path)).__name__
'LlavaForConditionalGeneration'
>>> print(AutoProcessor.from_pretrained(path).apply_chat_template(
...     [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
...     add_generation_prompt=True, tokenize=False))
USER: <image>
Hi ASSISTANT:
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "LLAVA_CHAT_TEMPLATE", "IDEFICS3_CHAT_TEMPLATE", "build_tiny_llava", "tiny_llava", "build_tiny_idefics3", "training_text",
]

# LLaVA-1.5 ("vicuna v1") conversation format, as in llava-hf/llava-1.5-7b-hf, plus {% generation %}
# markers around the assistant's words so TRL's `assistant_only_loss=True` can mask everything else.
# The assistant turn ends with the EOS token, which is what the model must learn to emit to stop.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% elif message['role'] == 'user' %}"
    "{{ 'USER: ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% else %}"
    "{{ 'ASSISTANT: ' }}"
    "{% generation %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ eos_token }}"
    "{% endgeneration %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Idefics3 / SmolVLM-Instruct format ("User:<image>...<end_of_utterance>\nAssistant: ..."), with
# generation markers around the assistant's words and its end-of-utterance token.
IDEFICS3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}"
    "{% if message['role'] == 'assistant' %}{{ ': ' }}{% generation %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ '<end_of_utterance>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}{{ ':' }}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<image>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{{ '<end_of_utterance>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def training_text() -> list[str]:
    """Text the tiny tokenizers are trained on: both instructions, every option and answer line."""
    from .instructions import classification_instruction, detection_instruction, format_classification_answer
    from .taxonomy import CLASSES

    lines = [classification_instruction(), classification_instruction(headings=True), detection_instruction()]
    for cls in CLASSES:
        lines.append(format_classification_answer([cls.id]))
        lines.append(f"{cls.name}: {cls.phrase}. {cls.explanation}")
        lines.extend(cls.aliases)
    lines.append("USER: ASSISTANT: User: Assistant: user assistant system Yes No None Artifact judgement")
    lines.append("0123456789 .,:;[]()'\"-")
    return lines


def _train_bpe(special_tokens: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_text(), trainer=trainer)
    return tokenizer


def _seeded(seed: int):
    import torch

    torch.manual_seed(seed)


def _save(model, processor, out_dir: str | Path) -> Path:
    path = Path(out_dir)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    processor.save_pretrained(path)
    return path


def build_tiny_llava(out_dir: str | Path, seed: int = 0, **config_overrides) -> Path:
    """A LLaVA-1.5-shaped checkpoint (CLIP vision tower + projector + Llama) with random weights,
    saved to ``out_dir``; see :func:`tiny_llava` for the wiring and the ``config_overrides``.

    Returns:
        ``Path(out_dir)``.
    """
    model, processor = tiny_llava(seed=seed, **config_overrides)
    return _save(model, processor, out_dir)


def tiny_llava(seed: int = 0, device=None, **config_overrides):
    """``(model, processor)`` of a LLaVA-1.5-shaped model with random weights, in memory.

    Same wiring as llava-hf/llava-1.5-7b-hf: CLS token kept by the tower and dropped by the "default"
    feature strategy (``num_additional_image_tokens=1`` on the processor), features from layer -2, a
    2-layer GELU projector, the vicuna-style chat template and left padding for batched generation.

    Args:
        seed: torch seed for the random weights; the same seed gives the same weights.
        device: where to create the weights (e.g. "cuda" for a 7B-shaped benchmark model).
        **config_overrides: sizes to change: ``image_size``, ``patch_size``, ``vision_hidden_size``,
            ``vision_intermediate_size``, ``vision_layers``, ``vision_heads``, ``hidden_size``,
            ``intermediate_size``, ``num_layers``, ``num_heads``, ``num_kv_heads``, ``vocab_size`` (BPE
            vocabulary incl. specials), ``text_vocab_size`` (embedding rows, default: the tokenizer's
            size; a 7B-shaped model uses 32064), ``max_position_embeddings``, ``dtype`` (torch dtype
            name, e.g. "bfloat16").
    """
    import torch
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    opts = {
        "image_size": 32, "patch_size": 8, "vision_hidden_size": 32, "vision_layers": 2, "vision_heads": 2,
        "hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
        "vocab_size": 1000, "dtype": "float32", "max_position_embeddings": 2048,
        "vision_intermediate_size": None, "text_vocab_size": None,
    }
    unknown = set(config_overrides) - set(opts)
    if unknown:
        raise TypeError(f"tiny_llava() got unknown config overrides {sorted(unknown)}; valid: {sorted(opts)}")
    opts.update(config_overrides)

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    backend = _train_bpe(specials, opts["vocab_size"])
    # LLaVA's tokenizer prepends BOS to every prompt.
    from tokenizers import processors

    bos_id = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
        model_max_length=opts["max_position_embeddings"],
    )
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")

    size = opts["image_size"]
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size},
        do_center_crop=True, do_resize=True, do_convert_rgb=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=opts["patch_size"],
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE,
    )

    vision_config = CLIPVisionConfig(
        hidden_size=opts["vision_hidden_size"],
        intermediate_size=opts["vision_intermediate_size"] or opts["vision_hidden_size"] * 2,
        num_hidden_layers=opts["vision_layers"], num_attention_heads=opts["vision_heads"],
        image_size=size, patch_size=opts["patch_size"], projection_dim=opts["vision_hidden_size"],
    )
    text_config = LlamaConfig(
        vocab_size=opts["text_vocab_size"] or len(tokenizer), hidden_size=opts["hidden_size"], intermediate_size=opts["intermediate_size"],
        num_hidden_layers=opts["num_layers"], num_attention_heads=opts["num_heads"],
        num_key_value_heads=opts["num_kv_heads"], max_position_embeddings=opts["max_position_embeddings"],
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision_config, text_config=text_config, image_token_id=image_token_id,
        vision_feature_select_strategy="default", vision_feature_layer=-2, projector_hidden_act="gelu",
    )
    _seeded(seed)
    with torch.device(device or "cpu"):
        model = LlavaForConditionalGeneration(config).eval()
    model.to(getattr(torch, opts["dtype"]))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model, processor


def build_tiny_idefics3(out_dir: str | Path, seed: int = 0) -> Path:
    """An Idefics3/SmolVLM-shaped checkpoint with random weights: SigLIP-style vision tower, pixel
    shuffle connector (``scale_factor=2``), Llama text model, ``<end_of_utterance>`` turn ends.

    Images are resized so the longest edge is 32 pixels and padded (no image splitting), giving
    4 image tokens inside ``<fake_token_around_image><global-img>...<fake_token_around_image>``.

    (Qwen2-VL, the other obvious choice, cannot be built here: its processor requires a video
    processor, and transformers' video processors need torchvision, which this project does not
    install.)

    Returns:
        ``Path(out_dir)``.
    """
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        PreTrainedTokenizerFast,
    )

    row_col = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = [
        "<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
        "<global-img>", *row_col,
    ]
    backend = _train_bpe(specials, 1000)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        padding_side="left",
        model_max_length=4096,
    )
    image_size, patch_size, scale_factor = 32, 8, 2
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size},
        do_image_splitting=False, do_pad=True,
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE,
    )
    ids = {tok: tokenizer.convert_tokens_to_ids(tok) for tok in specials}
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
            "image_size": image_size, "patch_size": patch_size,
        },
        text_config={
            "model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 4096, "bos_token_id": ids["<|im_start|>"],
            "eos_token_id": ids["<end_of_utterance>"], "pad_token_id": ids["<|endoftext|>"],
        },
        image_token_id=ids["<image>"], scale_factor=scale_factor,
    )
    _seeded(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    model.generation_config.bos_token_id = ids["<|im_start|>"]
    return _save(model, processor, out_dir)
