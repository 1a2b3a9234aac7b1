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
def release_annotations():
    """``../shared/synartifact-annotations`` (1,072 of the release's 1,310 annotation JSONs, exact copies,
    in the release's paths, plus the full split lists); the test is skipped where it is absent. Test data
    only: the release states no license, so these files are never shipped."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "shared" / "synartifact-annotations"
    if not (folder / "train.txt").is_file():
        pytest.skip(f"{folder} not present (the release's annotations are test data from ../shared)")
    return folder
