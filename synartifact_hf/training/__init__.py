"""Training helpers: which parts of a VLM train (the paper's recipe) and Stage-1 LLaVA assembly.

``from synartifact_hf.training import prepare_model_for_training, assemble_llava``. Submodules import
torch/transformers/peft only when their functions run.
"""

from .assembly import LLAVA_15_CHAT_TEMPLATE, assemble_llava, load_projector_weights
from .checkpoint import merge_lora_checkpoint
from .freezing import (
    LLM_MODES,
    TrainableSummary,
    lora_config_for,
    prepare_model_for_training,
    trainable_summary,
)
from .launch import check_launch
from .model_card import render_model_card, write_model_card
from .parts import VLMParts, VLMPartsNotFoundError, find_vlm_parts, unwrap_model

__all__ = [
    "LLAVA_15_CHAT_TEMPLATE",
    "LLM_MODES",
    "TrainableSummary",
    "VLMParts",
    "VLMPartsNotFoundError",
    "assemble_llava",
    "check_launch",
    "find_vlm_parts",
    "load_projector_weights",
    "lora_config_for",
    "merge_lora_checkpoint",
    "prepare_model_for_training",
    "render_model_card",
    "trainable_summary",
    "unwrap_model",
    "write_model_card",
]
