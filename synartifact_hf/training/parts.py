"""Find the vision tower, the projector and the language model of an image-text-to-text model.

The paper's recipe (Sec. 3.3) treats a VLM as three parts: a vision encoder (always frozen), a
vision-language projector (always trained) and a language model (frozen, fully updated, or adapted
with LoRA). Transformers names these parts differently per architecture; this module finds them by
structure: a known attribute path whose module exists, checked in order. The table below covers the
``AutoModelForImageTextToText`` families of transformers 5:

==================  ==========================  ==============================  ========================
architecture        vision tower                projector                       language model
==================  ==========================  ==============================  ========================
LLaVA / LLaVA-NeXT  ``model.vision_tower``      ``model.multi_modal_projector``  ``model.language_model``
                                                (+ ``model.image_newline``)
PaliGemma, Gemma3,  ``model.vision_tower``      ``model.multi_modal_projector``  ``model.language_model``
Mistral3
Qwen2-VL / 2.5-VL   ``model.visual``            ``model.visual.merger``          ``model.language_model``
Idefics3 / SmolVLM  ``model.vision_model``      ``model.connector``              ``model.text_model``
==================  ==========================  ==============================  ========================

The output head (``lm_head``) belongs to the language model. Qwen2-VL's projector (the patch merger)
lives *inside* its vision tower, so "the vision tower" means the tower minus the projector.

>>> import torch
>>> class Tiny(torch.nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.model = torch.nn.Module()
...         self.model.vision_tower = torch.nn.Linear(2, 2)
...         self.model.multi_modal_projector = torch.nn.Linear(2, 3)
...         self.model.language_model = torch.nn.Linear(3, 3)
...         self.lm_head = torch.nn.Linear(3, 5)
>>> parts = find_vlm_parts(Tiny())
>>> parts.vision_tower_path, parts.projector_paths, parts.language_model_path, parts.lm_head_path
('model.vision_tower', ('model.multi_modal_projector',), 'model.language_model', 'lm_head')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "VISION_TOWER_PATHS",
    "PROJECTOR_PATHS",
    "EXTRA_PROJECTOR_PARAMETERS",
    "LANGUAGE_MODEL_PATHS",
    "LM_HEAD_PATHS",
    "VLMParts",
    "VLMPartsNotFoundError",
    "find_vlm_parts",
    "unwrap_model",
]

# Checked in order; the first path that resolves to a module wins.
VISION_TOWER_PATHS = ("model.vision_tower", "model.visual", "model.vision_model", "vision_tower", "visual",
                      "vision_model")
PROJECTOR_PATHS = ("model.multi_modal_projector", "model.connector", "model.visual.merger",
                   "multi_modal_projector", "connector", "visual.merger")
# Learned parameters that belong to the adapter between vision and text (LLaVA-NeXT/OneVision's
# newline embedding): trained with the projector.
EXTRA_PROJECTOR_PARAMETERS = ("model.image_newline", "image_newline")
LANGUAGE_MODEL_PATHS = ("model.language_model", "model.text_model", "language_model", "text_model")
LM_HEAD_PATHS = ("lm_head",)


class VLMPartsNotFoundError(ValueError):
    """The model does not have the vision tower / projector / language model layout we know."""


@dataclass(frozen=True)
class VLMParts:
    """Where the parts of a VLM live, as dotted paths relative to the (unwrapped) model."""

    model: torch.nn.Module = field(repr=False)
    vision_tower_path: str
    projector_paths: tuple[str, ...]
    language_model_path: str
    lm_head_path: str | None

    def module(self, path: str):
        return _get(self.model, path)

    @property
    def vision_tower(self):
        return _get(self.model, self.vision_tower_path)

    @property
    def projector(self):
        """The projector module (the first projector path; extra parameters are in ``projector_paths``)."""
        return _get(self.model, self.projector_paths[0])

    @property
    def language_model(self):
        return _get(self.model, self.language_model_path)

    def part_of(self, parameter_name: str) -> str:
        """Which part a parameter (name relative to ``model``) belongs to.

        One of ``"projector"``, ``"vision_tower"``, ``"language_model"`` or ``"other"``. The projector is
        checked first because Qwen2-VL nests it inside the vision tower.
        """
        name = _strip_wrappers(parameter_name)
        for path in self.projector_paths:
            if name == path or name.startswith(path + "."):
                return "projector"
        if name.startswith(self.vision_tower_path + "."):
            return "vision_tower"
        if name.startswith(self.language_model_path + "."):
            return "language_model"
        if self.lm_head_path is not None and name.startswith(self.lm_head_path + "."):
            return "language_model"
        return "other"


def unwrap_model(model):
    """The transformers model under a PEFT wrapper (``PeftModel`` -> ``LoraModel`` -> model)."""
    # Only PEFT wrappers are unwrapped: a transformers model's own ``base_model`` is its inner
    # backbone (e.g. LlavaModel), not a wrapper.
    if type(model).__module__.startswith("peft.") and hasattr(model, "get_base_model"):
        return model.get_base_model()
    return model


def _strip_wrappers(name: str) -> str:
    # PEFT names parameters "base_model.model.<path>" and LoRA/modules_to_save add inner segments.
    for prefix in ("base_model.model.",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace(".modules_to_save.default", "").replace(".original_module", "")


def _get(root, path: str):
    obj = root
    for attr in path.split("."):
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj


def _first_module(model, paths):
    import torch

    for path in paths:
        obj = _get(model, path)
        if isinstance(obj, torch.nn.Module):
            return path
    return None


def find_vlm_parts(model) -> VLMParts:
    """Locate the vision tower, projector and language model of ``model`` (PEFT wrappers are unwrapped).

    Raises:
        VLMPartsNotFoundError: when one of the three parts is not found; the message lists the
            attribute paths tried and the model's top-level children, so a new architecture can be
            added to the path tables above.
    """
    import torch

    base = unwrap_model(model)
    vision = _first_module(base, VISION_TOWER_PATHS)
    projector = _first_module(base, PROJECTOR_PATHS)
    language = _first_module(base, LANGUAGE_MODEL_PATHS)
    missing = [
        (what, paths)
        for what, found, paths in (
            ("vision tower", vision, VISION_TOWER_PATHS),
            ("projector", projector, PROJECTOR_PATHS),
            ("language model", language, LANGUAGE_MODEL_PATHS),
        )
        if found is None
    ]
    if missing:
        children = [name for name, _ in base.named_children()]
        inner = getattr(base, "model", None)
        if isinstance(inner, torch.nn.Module):
            children += [f"model.{name}" for name, _ in inner.named_children()]
        lines = [f"{what} (tried {', '.join(paths)})" for what, paths in missing]
        raise VLMPartsNotFoundError(
            f"Cannot find the {' / '.join(w for w, _ in missing)} of {type(base).__name__}: "
            + "; ".join(lines)
            + f". Its modules are: {', '.join(children) or '(none)'}. Supported layouts: LLaVA, LLaVA-NeXT, "
            "PaliGemma, Gemma3, Mistral3, Qwen2-VL, Qwen2.5-VL, Idefics3, SmolVLM (synartifact_hf.training.parts)."
        )
    projector_paths = [projector]
    for path in EXTRA_PROJECTOR_PARAMETERS:
        if isinstance(_get(base, path), torch.nn.Parameter):
            projector_paths.append(path)
            break
    lm_head = _first_module(base, LM_HEAD_PATHS)
    return VLMParts(
        model=base,
        vision_tower_path=vision,
        projector_paths=tuple(projector_paths),
        language_model_path=language,
        lm_head_path=lm_head,
    )
