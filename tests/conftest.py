"""Shared test fixtures. Tests never touch the Hugging Face Hub: the environment variables below make
any accidental download fail fast, and the tiny checkpoints are built locally from configs with random
weights (see synartifact_hf/tiny_models.py)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_llava_path(tmp_path_factory):
    """Folder of a tiny LLaVA-1.5-style checkpoint (random weights, seed 0): CLIP tower 32px/8px patches
    (16 image tokens), 2-layer Llama, BPE tokenizer, LlavaProcessor with a vicuna chat template that has
    {% generation %} markers, left padding. Treat it as read-only (it is shared by the whole session)."""
    from synartifact_hf.tiny_models import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"), seed=0)


@pytest.fixture(scope="session")
def tiny_idefics3_path(tmp_path_factory):
    """Folder of a tiny Idefics3/SmolVLM-style checkpoint (random weights, seed 0), 4 image tokens,
    ChatML-like "User:/Assistant:" template with {% generation %} markers, left padding. Read-only."""
    from synartifact_hf.tiny_models import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny-idefics3"), seed=0)


@pytest.fixture(scope="session")
def tiny_sd_path(tmp_path_factory):
    """Folder of a tiny Stable-Diffusion-v1-style pipeline (random weights, seed 0; 32x32 images, DDIM
    scheduler, no safety checker); see synartifact_hf/tiny_diffusion.py. Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sd_pipeline

    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd"), seed=0)


@pytest.fixture(scope="session")
def tiny_sd2v_path(tmp_path_factory):
    """Tiny SD 2.x-v-style pipeline (v-prediction DDIM, linear attention projections; random weights,
    seed 0, 32x32 images). Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sd_pipeline

    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("tiny-sd2v"), seed=0, v_prediction=True)


@pytest.fixture(scope="session")
def tiny_sdxl_path(tmp_path_factory):
    """Tiny Stable-Diffusion-XL-base-style pipeline (two text encoders, text_time UNet, force_upcast VAE,
    SDXL's Euler scheduler config; random weights, seed 0, 32x32 images); loads with
    StableDiffusionXLPipeline.from_pretrained. Read-only."""
    from synartifact_hf.tiny_diffusion import build_tiny_sdxl_pipeline

    return build_tiny_sdxl_pipeline(tmp_path_factory.mktemp("tiny-sdxl"), seed=0)
