"""Which parts of a VLM train: the paper's recipe (vision frozen, projector trained, LLM frozen or updated).

``prepare_model_for_training(model, llm_mode)`` applies one of three modes:

- ``"frozen"``: only the projector trains (Table 2's best row, "Stage 1 init, LLM frozen").
- ``"full"``: the projector and the whole language model (with its output head) train.
- ``"lora"``: the projector trains in full and the language model through LoRA adapters (peft) on its
  linear layers; the base weights stay frozen. Not in the paper; a cheaper stand-in for "full".

The vision tower is frozen in every mode. Parameters outside the three parts (none in the supported
architectures) stay frozen and are counted under ``"other"`` in the summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .parts import find_vlm_parts

__all__ = [
    "LLM_MODES",
    "TrainableSummary",
    "lora_config_for",
    "prepare_model_for_training",
    "trainable_summary",
]

LLM_MODES = ("frozen", "full", "lora")
PARTS = ("vision_tower", "projector", "language_model", "other")


@dataclass
class TrainableSummary:
    """Trainable / total parameter counts per part."""

    trainable: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {part: {"trainable": self.trainable.get(part, 0), "total": self.total.get(part, 0)} for part in PARTS}

    def describe(self) -> str:
        """One line per part, e.g. ``projector: 21.0M / 21.0M trainable``."""
        lines = []
        for part in PARTS:
            total = self.total.get(part, 0)
            if total:
                lines.append(f"{part}: {_fmt(self.trainable.get(part, 0))} / {_fmt(total)} trainable")
        return "\n".join(lines)

    def trainable_parts(self) -> list[str]:
        return [part for part in PARTS if self.trainable.get(part, 0)]


def _fmt(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def trainable_summary(model) -> TrainableSummary:
    """Count trainable and total parameters per part (works on PEFT-wrapped models; LoRA weights count
    under the part they adapt)."""
    parts = find_vlm_parts(model)
    summary = TrainableSummary()
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if id(param) in seen:  # tied weights count once
            continue
        seen.add(id(param))
        part = parts.part_of(name)
        summary.total[part] = summary.total.get(part, 0) + param.numel()
        if param.requires_grad:
            summary.trainable[part] = summary.trainable.get(part, 0) + param.numel()
    return summary


def _linear_leaf_names(module) -> list[str]:
    import torch

    names = {name.rsplit(".", 1)[-1] for name, sub in module.named_modules() if isinstance(sub, torch.nn.Linear)}
    return sorted(names)


def lora_config_for(model, r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules=None):
    """A ``peft.LoraConfig`` that adapts the language model only and fully trains the projector.

    ``target_modules`` are leaf names (``["q_proj", "v_proj"]``); by default every linear layer of the
    language model. They are anchored to the language model's path, so the vision tower's and the
    projector's linear layers never get adapters. The projector goes in ``modules_to_save`` so PEFT
    trains it and saves it with the adapter.
    """
    from peft import LoraConfig

    parts = find_vlm_parts(model)
    leaves = list(target_modules) if target_modules else _linear_leaf_names(parts.language_model)
    if not leaves:
        raise ValueError(f"The language model at {parts.language_model_path!r} has no linear layers to adapt")
    available = set(_linear_leaf_names(parts.language_model))
    unknown = sorted(set(leaves) - available)
    if unknown:
        raise ValueError(
            f"LoRA target modules {unknown} are not linear layers of the language model "
            f"({parts.language_model_path}); available: {sorted(available)}"
        )
    pattern = rf"{re.escape(parts.language_model_path)}\..*\.({'|'.join(map(re.escape, leaves))})"
    projector_modules = [p for p in parts.projector_paths if not _is_parameter(parts, p)]
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=pattern,
        modules_to_save=projector_modules,
        task_type="CAUSAL_LM",
    )


def _is_parameter(parts, path) -> bool:
    import torch

    return isinstance(parts.module(path), torch.nn.Parameter)


def prepare_model_for_training(model, llm_mode: str = "frozen", *, lora_config=None):
    """Set ``requires_grad`` for the recipe and return ``(model, summary)``.

    Args:
        model: an ``AutoModelForImageTextToText`` model (LLaVA, LLaVA-NeXT, Qwen2-VL, Idefics3/SmolVLM,
            PaliGemma, ...).
        llm_mode: ``"frozen"``, ``"full"`` or ``"lora"``.
        lora_config: for ``"lora"``, a ``peft.LoraConfig``; default ``lora_config_for(model)``.

    Returns:
        The model to train (a ``peft.PeftModel`` in ``"lora"`` mode) and its :class:`TrainableSummary`.
        In LoRA mode, extra projector *parameters* that are not modules (LLaVA-NeXT's
        ``image_newline``) stay frozen: PEFT saves whole modules only, and a trained tensor that the
        adapter checkpoint does not hold would be lost on resume.
    """
    if llm_mode not in LLM_MODES:
        raise ValueError(f"llm_mode must be one of {LLM_MODES}, got {llm_mode!r}")
    parts = find_vlm_parts(model)
    if llm_mode == "lora":
        from peft import get_peft_model

        config = lora_config if lora_config is not None else lora_config_for(model)
        # get_peft_model freezes every base weight, then unfreezes adapters and modules_to_save.
        model = get_peft_model(model, config)
        for name, param in model.named_parameters():
            if parts.part_of(name) == "vision_tower" and param.requires_grad:
                raise ValueError(
                    f"The LoRA config makes vision-tower parameter {name!r} trainable; target the language "
                    "model only (see lora_config_for)"
                )
        return model, trainable_summary(model)

    train_llm = llm_mode == "full"
    for name, param in model.named_parameters():
        part = parts.part_of(name)
        param.requires_grad = part == "projector" or (train_llm and part == "language_model")
    return model, trainable_summary(model)
