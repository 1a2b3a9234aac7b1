"""Tiny Stable Diffusion pipelines (v1, v2-v, XL) with random weights, built locally for tests and demos.

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

``build_tiny_sd_pipeline(path, v_prediction=True)`` gives the SD 2.x-v variant (v-prediction DDIM,
linear-projection attention, as ``stabilityai/stable-diffusion-2-1``). ``build_tiny_sdxl_pipeline``
builds the Stable Diffusion XL base layout (two CLIP text encoders, the second with projection, a
``text_time`` UNet, a ``force_upcast`` VAE, SDXL's ``EulerDiscreteScheduler`` config) and loads with
``StableDiffusionXLPipeline.from_pretrained``; ``sdxl_pipeline("sdxl-base")`` builds the same classes
with the real SDXL base shape (1024 px, every channel and layer count; random weights, about 3.5B
parameters) in memory, for GPU memory and speed checks.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "FLUX_SHAPES", "SD3_SHAPES", "SDXL_SHAPES", "SD_SHAPES", "TINY_IMAGE_SIZE", "build_tiny_flux_pipeline",
    "build_tiny_sd3_pipeline", "build_tiny_sd_pipeline", "build_tiny_sdxl_pipeline", "flux_pipeline", "sd3_pipeline",
    "sd_pipeline", "sdxl_pipeline",
]

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


def _write_clip_tokenizer(folder: Path, max_length: int = _MAX_LENGTH, pad_token: str = "<|endoftext|>"):
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
        pad_token=pad_token,
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


def build_tiny_sd_pipeline(out_dir: str | Path, seed: int = 0, v_prediction: bool = False) -> Path:
    """Build and save a tiny random-weight Stable Diffusion pipeline in ``out_dir``; return the folder.

    ``seed`` fixes every weight. Images are ``TINY_IMAGE_SIZE`` (32) pixels square. ``v_prediction``:
    SD 2.x-v traits (the scheduler's ``prediction_type="v_prediction"``, linear attention projections).
    """
    sd_pipeline(seed=seed, v_prediction=v_prediction).save_pretrained(Path(out_dir), safe_serialization=True)
    return Path(out_dir)


def sd_pipeline(shape: str = "tiny", seed: int = 0, device=None, v_prediction: bool = False):
    """A ``StableDiffusionPipeline`` with random weights, in memory, of shape ``SD_SHAPES[shape]`` ("tiny" or
    "sd15"); weights are created directly on ``device`` (float32) and fixed by ``seed``. ``v_prediction``:
    SD 2.x-v traits (v-prediction scheduler, linear attention projections)."""
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
        unet = UNet2DConditionModel(
            sample_size=size // 2 ** (blocks - 1), in_channels=4, out_channels=4, use_linear_projection=v_prediction,
            **spec["unet"],
        )
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
        prediction_type="v_prediction" if v_prediction else "epsilon",
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


# Shapes of the SDXL builder. "sdxl-base" is stabilityai/stable-diffusion-xl-base-1.0's configs (UNet,
# VAE, CLIP ViT-L and OpenCLIP bigG text encoders); "tiny" keeps its structure (a DownBlock2D first, then
# cross-attention blocks of growing transformer depth, text_time conditioning) at a few thousand
# parameters per block: 32x32 images, 16x16x4 latents.
SDXL_SHAPES = {
    "tiny": dict(
        image_size=32, unet_channels=(16, 32), layers_per_block=1, transformer_layers=(1, 2), head_dim=(2, 4),
        time_embed_dim=8, norm_groups=8, vae_channels=(8, 16), vae_layers=1, vae_groups=8, max_length=_MAX_LENGTH,
        vocab_size=None, text=((16, 32, 2, 2, "quick_gelu"), (16, 32, 2, 2, "gelu")), projection_dim=16,
    ),
    "sdxl-base": dict(
        image_size=1024, unet_channels=(320, 640, 1280), layers_per_block=2, transformer_layers=(1, 2, 10),
        head_dim=(5, 10, 20), time_embed_dim=256, norm_groups=32, vae_channels=(128, 256, 512, 512), vae_layers=2,
        vae_groups=32, max_length=77, vocab_size=49408,
        # (hidden, intermediate, heads, layers, activation) of text_encoder and text_encoder_2
        text=((768, 3072, 12, 12, "quick_gelu"), (1280, 5120, 20, 32, "gelu")), projection_dim=1280,
    ),
}


def sdxl_pipeline(shape: str = "tiny", seed: int = 0, device=None):
    """A random-weight ``StableDiffusionXLPipeline`` of ``SDXL_SHAPES[shape]``, in memory (float32).

    ``device`` builds the weights there directly (``"cuda"`` for the 3.5B-parameter ``"sdxl-base"``
    shape: its random init on CPU takes minutes). The tokenizers are the byte-level CLIP BPE of
    ``build_tiny_sd_pipeline`` (any prompt tokenizes, loaded from a temporary folder); the second pads
    with ``"!"`` as SDXL's ``tokenizer_2`` does.
    """
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    if shape not in SDXL_SHAPES:
        raise ValueError(f"unknown SDXL shape {shape!r}; one of {sorted(SDXL_SHAPES)}")
    c = SDXL_SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokenizer = _write_clip_tokenizer(folder / "tokenizer", c["max_length"])
        tokenizer_2 = _write_clip_tokenizer(folder / "tokenizer_2", c["max_length"], pad_token="!")
    torch.manual_seed(seed)
    levels = len(c["unet_channels"])
    with torch.device(device or "cpu"):
        encoders = []
        for (hidden, inner, heads, layers, act), cls, tok in zip(
            c["text"], (CLIPTextModel, CLIPTextModelWithProjection), (tokenizer, tokenizer_2)
        ):
            encoders.append(cls(CLIPTextConfig(
                vocab_size=c["vocab_size"] or len(tok), hidden_size=hidden, intermediate_size=inner,
                num_attention_heads=heads, num_hidden_layers=layers, hidden_act=act,
                max_position_embeddings=c["max_length"], projection_dim=c["projection_dim"] if cls is not CLIPTextModel else hidden,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            )))
        vae_scale = 2 ** (len(c["vae_channels"]) - 1)
        unet = UNet2DConditionModel(
            sample_size=c["image_size"] // vae_scale,
            in_channels=4,
            out_channels=4,
            block_out_channels=c["unet_channels"],
            layers_per_block=c["layers_per_block"],
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
            transformer_layers_per_block=c["transformer_layers"],
            attention_head_dim=c["head_dim"],
            cross_attention_dim=c["text"][0][0] + c["text"][1][0],  # both encoders' hidden states, concatenated
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=c["time_embed_dim"],
            # 6 time ids (original size, crop corner, target size) + text_encoder_2's pooled projection
            projection_class_embeddings_input_dim=6 * c["time_embed_dim"] + c["projection_dim"],
            norm_num_groups=c["norm_groups"],
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * len(c["vae_channels"]),
            up_block_types=("UpDecoderBlock2D",) * len(c["vae_channels"]),
            block_out_channels=c["vae_channels"],
            latent_channels=4,
            layers_per_block=c["vae_layers"],
            norm_num_groups=c["vae_groups"],
            sample_size=c["image_size"],
            scaling_factor=0.13025,
            force_upcast=True,  # SDXL's VAE overflows in fp16
        )
    # SDXL base's scheduler_config.json: Euler, with the DDIM-relevant keys DDIMScheduler.from_config reads
    scheduler = EulerDiscreteScheduler.from_config(dict(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="epsilon", sample_max_value=1.0, set_alpha_to_one=False,
        skip_prk_steps=True, steps_offset=1, timestep_spacing="leading", trained_betas=None, use_karras_sigmas=False,
    ))
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1], tokenizer=tokenizer, tokenizer_2=tokenizer_2,
        unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True, add_watermarker=False,
    )


def build_tiny_sdxl_pipeline(out_dir: str | Path, seed: int = 0, shape: str = "tiny") -> Path:
    """Build and save a random-weight Stable Diffusion XL pipeline (``SDXL_SHAPES[shape]``, safetensors)
    in ``out_dir``; return the folder. It loads with ``StableDiffusionXLPipeline.from_pretrained(path)``;
    pass ``add_watermarker=False`` there if ``invisible-watermark`` is installed (the tiny images are
    smaller than the watermarker accepts)."""
    out_dir = Path(out_dir)
    sdxl_pipeline(shape, seed=seed).save_pretrained(out_dir, safe_serialization=True)
    return out_dir


# ---------------------------------------------------------------------------------------------- flow matching
# Shapes of the SD3 / FLUX builders. "sd35-medium" and "flux-dev" are stabilityai/stable-diffusion-3.5-medium's
# and black-forest-labs/FLUX.1-dev's configs (transformer, VAE, CLIP-L / OpenCLIP bigG / T5-XXL text encoders);
# "tiny" keeps each structure (SD3.5's MMDiT-X with dual-attention and RMS q/k norm; FLUX's double- and
# single-stream blocks with guidance embedding) at a few thousand parameters per block: 32x32 images.
_CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
               hidden_act="quick_gelu", projection_dim=768, vocab_size=49408, max_position_embeddings=77)
_CLIP_G = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
               hidden_act="gelu", projection_dim=1280, vocab_size=49408, max_position_embeddings=77)
_T5_XXL = dict(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
               feed_forward_proj="gated-gelu", relative_attention_num_buckets=32, relative_attention_max_distance=128)
_TINY_CLIP = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                  hidden_act="quick_gelu", projection_dim=16, vocab_size=None, max_position_embeddings=_MAX_LENGTH)

SD3_SHAPES = {
    "tiny": dict(
        transformer=dict(sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=8,
                         num_attention_heads=2, joint_attention_dim=64, caption_projection_dim=16,
                         pooled_projection_dim=32, pos_embed_max_size=16, qk_norm="rms_norm", dual_attention_layers=(0,)),
        vae=dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, latent_channels=4, sample_size=32),
        clip=(_TINY_CLIP, _TINY_CLIP),
        t5=dict(vocab_size=None, d_model=64, d_kv=8, d_ff=64, num_layers=1, num_heads=2, feed_forward_proj="gated-gelu",
                relative_attention_num_buckets=8, relative_attention_max_distance=16),
    ),
    "sd35-medium": dict(
        transformer=dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                         attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                         caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=384,
                         qk_norm="rms_norm", dual_attention_layers=tuple(range(13))),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, latent_channels=16,
                 sample_size=1024),
        clip=(_CLIP_L, _CLIP_G),
        t5=_T5_XXL,
    ),
}

FLUX_SHAPES = {
    "tiny": dict(
        transformer=dict(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
                         num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                         axes_dims_rope=(2, 2, 4)),
        vae=dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, latent_channels=4, sample_size=32),
        clip=dict(_TINY_CLIP, projection_dim=32),
        t5=dict(vocab_size=None, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2, feed_forward_proj="gated-gelu",
                relative_attention_num_buckets=8, relative_attention_max_distance=16),
    ),
    "flux-dev": dict(
        transformer=dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                         num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                         guidance_embeds=True, axes_dims_rope=(16, 56, 56)),
        vae=dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, latent_channels=16,
                 sample_size=1024),
        clip=_CLIP_L,
        t5=_T5_XXL,
    ),
}


def _write_t5_tokenizer(folder: Path):
    """A real T5 (SentencePiece Unigram) fast tokenizer built with ``tokenizers``: ``<pad>``, ``</s>``, ``<unk>``,
    then one piece per printable ASCII character (with and without the word-start marker), so any prompt
    tokenizes. (The real-shape T5 keeps its 32128 embedding rows; the tokenizer only uses the first ones.)"""
    import string

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    for ch in string.ascii_letters + string.digits + string.punctuation:
        pieces += [(ch, -3.0), ("▁" + ch, -3.5)]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=2))
    tokenizer.normalizer = normalizers.Replace("  ", " ")
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                             special_tokens=[("</s>", 1)])
    fast = T5TokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                           extra_ids=0, model_max_length=512)
    fast.save_pretrained(folder)
    return T5TokenizerFast.from_pretrained(folder)


def _text_encoders(clip_specs, t5_spec, tokenizers, t5_tokenizer, with_projection: bool):
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        T5Config,
        T5EncoderModel,
    )

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    clips = [
        cls(CLIPTextConfig(**dict(spec, vocab_size=spec["vocab_size"] or len(tok)), bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
        for spec, tok in zip(clip_specs, tokenizers)
    ]
    t5 = None
    if t5_spec is not None:
        spec = dict(t5_spec, vocab_size=t5_spec["vocab_size"] or len(t5_tokenizer))
        t5 = T5EncoderModel(T5Config(**spec, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    return clips, t5


def _flow_vae(spec, shift_factor: float, scaling_factor: float):
    from diffusers import AutoencoderKL

    blocks = len(spec["block_out_channels"])
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks, use_quant_conv=False, use_post_quant_conv=False,
        shift_factor=shift_factor, scaling_factor=scaling_factor, force_upcast=False, **spec,
    )


def _weights_on(device, dtype):
    """Create modules' weights directly on ``device`` in ``dtype`` (default float32): a real-shape model then
    never exists in float32 on the GPU."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def scope():
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype or torch.float32)
        try:
            with torch.device(device or "cpu"):
                yield
        finally:
            torch.set_default_dtype(previous)

    return scope()


def sd3_pipeline(shape: str = "tiny", seed: int = 0, device=None, with_t5: bool = True, dtype=None):
    """A random-weight ``StableDiffusion3Pipeline`` of ``SD3_SHAPES[shape]`` ("tiny" or "sd35-medium"), in memory
    (``dtype``, default float32, on ``device``; ``device="meta"`` for the 8B-parameter real shape without memory). ``with_t5=False`` drops the T5
    encoder (``text_encoder_3=None``), as SD3 allows. Scheduler: SD3.5's ``FlowMatchEulerDiscreteScheduler``
    (shift 3.0). The VAE has SD3's 16-channel scaling / shift factors."""
    import tempfile

    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    if shape not in SD3_SHAPES:
        raise ValueError(f"unknown SD3 shape {shape!r}; one of {sorted(SD3_SHAPES)}")
    spec = SD3_SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp:
        length = spec["clip"][0]["max_position_embeddings"]
        tokenizer = _write_clip_tokenizer(Path(tmp) / "tokenizer", length)
        tokenizer_2 = _write_clip_tokenizer(Path(tmp) / "tokenizer_2", length, pad_token="!")
        tokenizer_3 = _write_t5_tokenizer(Path(tmp) / "tokenizer_3") if with_t5 else None
    torch.manual_seed(seed)
    with _weights_on(device, dtype):
        (clip, clip_2), t5 = _text_encoders(spec["clip"], spec["t5"] if with_t5 else None, (tokenizer, tokenizer_2),
                                            tokenizer_3, with_projection=True)
        transformer = SD3Transformer2DModel(**spec["transformer"])
        vae = _flow_vae(spec["vae"], shift_factor=0.0609, scaling_factor=1.5305)
    for module in (clip, clip_2, t5, transformer, vae):
        if module is not None:
            module.eval()  # as from_pretrained gives them: T5's dropout off
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
        vae=vae, text_encoder=clip, tokenizer=tokenizer, text_encoder_2=clip_2, tokenizer_2=tokenizer_2,
        text_encoder_3=t5, tokenizer_3=tokenizer_3,
    )


def flux_pipeline(shape: str = "tiny", seed: int = 0, device=None, dtype=None):
    """A random-weight ``FluxPipeline`` of ``FLUX_SHAPES[shape]`` ("tiny" or "flux-dev"), in memory (``dtype``,
    default float32, on ``device``; ``device="meta"`` for the 17B-parameter real shape). FLUX.1-dev traits: guidance embedding, packed 2x2
    latents with RoPE ids, 16-channel VAE with FLUX's scaling / shift, the dynamic-shift flow-matching
    scheduler."""
    import tempfile

    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    if shape not in FLUX_SHAPES:
        raise ValueError(f"unknown FLUX shape {shape!r}; one of {sorted(FLUX_SHAPES)}")
    spec = FLUX_SHAPES[shape]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = _write_clip_tokenizer(Path(tmp) / "tokenizer", spec["clip"]["max_position_embeddings"])
        tokenizer_2 = _write_t5_tokenizer(Path(tmp) / "tokenizer_2")
    torch.manual_seed(seed)
    with _weights_on(device, dtype):
        (clip,), t5 = _text_encoders((spec["clip"],), spec["t5"], (tokenizer,), tokenizer_2, with_projection=False)
        transformer = FluxTransformer2DModel(**spec["transformer"])
        vae = _flow_vae(spec["vae"], shift_factor=0.1159, scaling_factor=0.3611)
    scheduler = FlowMatchEulerDiscreteScheduler(  # FLUX.1-dev's scheduler_config.json
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )
    for module in (clip, t5, transformer, vae):
        module.eval()  # as from_pretrained gives them: T5's dropout off
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=tokenizer, text_encoder_2=t5,
                        tokenizer_2=tokenizer_2, transformer=transformer)


def build_tiny_sd3_pipeline(out_dir: str | Path, seed: int = 0, with_t5: bool = True) -> Path:
    """Build and save a tiny random-weight SD3.5-style pipeline (``sd3_pipeline("tiny")``, safetensors, the real
    folder layout with model_index.json) in ``out_dir``; loads with ``StableDiffusion3Pipeline.from_pretrained``.
    ``with_t5=False``: no T5 folders; load it as SD3 without T5 is loaded, ``from_pretrained(path,
    text_encoder_3=None, tokenizer_3=None)``."""
    sd3_pipeline("tiny", seed=seed, with_t5=with_t5).save_pretrained(Path(out_dir), safe_serialization=True)
    return Path(out_dir)


def build_tiny_flux_pipeline(out_dir: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny random-weight FLUX.1-dev-style pipeline (``flux_pipeline("tiny")``) in ``out_dir``;
    loads with ``FluxPipeline.from_pretrained``. Its native resolution is FluxPipeline's default (128 latent
    pixels x the VAE's scale factor 2 = 256 px); tests sample it at 32 px (``height=width=32``)."""
    flux_pipeline("tiny", seed=seed).save_pretrained(Path(out_dir), safe_serialization=True)
    return Path(out_dir)
