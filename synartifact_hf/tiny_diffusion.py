"""A tiny Stable-Diffusion-v1-style pipeline with random weights, built locally for tests and demos.

Same component classes and folder layout as ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (UNet2D
conditional UNet with cross-attention ``to_q/to_k/to_v/to_out.0`` layers, ``AutoencoderKL``,
``CLIPTextModel`` + ``CLIPTokenizer``, ``DDIMScheduler`` with SD v1.5's noise schedule, no safety
checker), shrunk to a few thousand parameters per block: 32x32 images, 16x16x4 latents. The folder
loads with ``StableDiffusionPipeline.from_pretrained(path)`` (and with TRL 0.23's
``DefaultDDPOStableDiffusionPipeline(path)``). Weights are saved as safetensors.

The tokenizer is a real byte-level CLIP BPE whose vocabulary is just the 256 byte symbols (with and
without the end-of-word marker) and a handful of merges, so any prompt tokenizes, one token per
character. Random weights: images are noise-like; this checks mechanics (shapes, gradients, saving),
never image quality.

>>> import tempfile
>>> from diffusers import StableDiffusionPipeline
>>> path = build_tiny_sd_pipeline(tempfile.mkdtemp())
>>> pipe = StableDiffusionPipeline.from_pretrained(path)
>>> pipe("a tench", num_inference_steps=2, output_type="np").images.shape
(1, 32, 32, 3)
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["build_tiny_sd_pipeline", "sd_pipeline", "SD_SHAPES", "TINY_IMAGE_SIZE"]

TINY_IMAGE_SIZE = 32
_MAX_LENGTH = 32  # token positions; CLIP's 77 would only make the tiny text encoder slower


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP's reversible byte -> printable-character table (what CLIPTokenizer expects in vocab.json)
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _write_clip_tokenizer(folder: Path, max_length: int = _MAX_LENGTH):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(_bytes_to_unicode().values())
    vocab = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    # a few merges so the BPE path is exercised, not just the character fallback
    merges = [("a", "n"), ("i", "n"), ("e", "r"), ("t", "h"), ("o", "n</w>"), ("e", "s</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    tokenizer = CLIPTokenizer(
        vocab=str(folder / "vocab.json"),
        merges=str(folder / "merges.txt"),
        model_max_length=max_length,
        pad_token="<|endoftext|>",
    )
    return tokenizer


# Component sizes per shape. "tiny" is the test pipeline; "sd15" is Stable Diffusion v1.5's architecture
# (its unet/vae/text_encoder config.json values: 860M UNet, 512 px images, 64x64x4 latents, CLIP ViT-L/14
# text encoder) for benchmarks with random weights (benchmarks/gpu_check.py).
SD_SHAPES = {
    "tiny": dict(
        image_size=TINY_IMAGE_SIZE, max_length=_MAX_LENGTH,
        unet=dict(block_out_channels=(16, 32), layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
                  norm_num_groups=8),
        vae=dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8),
        text=dict(vocab_size=None, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2),
    ),
    "sd15": dict(
        image_size=512, max_length=77,
        unet=dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
                  down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                  up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768,
                  attention_head_dim=8, norm_num_groups=32),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32),
        text=dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                  num_hidden_layers=12, hidden_act="quick_gelu", projection_dim=768),
    ),
}


def build_tiny_sd_pipeline(out_dir: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny random-weight Stable Diffusion pipeline in ``out_dir``; return the folder.

    ``seed`` fixes every weight. Images are ``TINY_IMAGE_SIZE`` (32) pixels square.
    """
    sd_pipeline(seed=seed).save_pretrained(Path(out_dir), safe_serialization=True)
    return Path(out_dir)


def sd_pipeline(shape: str = "tiny", seed: int = 0, device=None):
    """A ``StableDiffusionPipeline`` with random weights, in memory, of shape ``SD_SHAPES[shape]`` ("tiny" or
    "sd15"); weights are created directly on ``device`` (float32) and fixed by ``seed``."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if shape not in SD_SHAPES:
        raise ValueError(f"Unknown shape {shape!r}; choose one of {sorted(SD_SHAPES)}")
    spec = SD_SHAPES[shape]
    size = spec["image_size"]
    blocks = len(spec["vae"]["block_out_channels"])
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _write_clip_tokenizer(Path(tmp) / "tokenizer", spec["max_length"])
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        unet = UNet2DConditionModel(sample_size=size // 2 ** (blocks - 1), in_channels=4, out_channels=4, **spec["unet"])
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
            up_block_types=("UpDecoderBlock2D",) * blocks, latent_channels=4, sample_size=size, **spec["vae"],
        )
        text = dict(spec["text"], vocab_size=spec["text"]["vocab_size"] or len(tokenizer))
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                **text,
                max_position_embeddings=spec["max_length"],
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    # SD v1.5's scheduler settings (its scheduler_config.json), as DDIM
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
