"""DDPO fine-tuning of Stable Diffusion 1.x / 2.x / XL (Black et al. 2023), maintained here because TRL removed its
``DDPOTrainer`` after v0.23. Field names and the constructor follow TRL's.

- `DDPOConfig` (``config.py``): every knob, TRL's names.
- `DDPOTrainer` (``trainer.py``): DDIM sampling and the DDPO step loss on the shared RL core.
- `ddim_step_with_logprob`, `sample_with_logprob` (``ddim.py``): DDIM with per-step log-probabilities.
- `pipeline_family`, `pipeline_class` (``families.py``): what differs between SD 1.x/2.x and SDXL (prompt encoding, the
  UNet's extra conditioning, VAE decoding), behind one interface.

Shared with Flow-GRPO (`synartifact_hf.grpo`) in `synartifact_hf.rl`, re-exported here:
`PerPromptStatTracker` (per-prompt reward normalization, ``rl/stat_tracking.py``) and the picklable prompt
functions `ImageNetAnimalPrompts`, `PromptList` (``rl/prompt_functions.py``; the paper's ImageNet-animal list
ships as ``rl/imagenet_animals.txt``). ``synartifact_hf.ddpo.prompts`` and ``.stat_tracking`` stay importable.

Importing this package is light; torch, diffusers and accelerate load with the trainer.
"""

from __future__ import annotations

import importlib

from ..rl.prompt_functions import ImageNetAnimalPrompts, PromptList, imagenet_animal_classes
from .config import DDPOConfig

__all__ = [
    "DDPOConfig",
    "DDPOTrainer",
    "ImageNetAnimalPrompts",
    "PromptList",
    "PerPromptStatTracker",
    "ddim_step_with_logprob",
    "imagenet_animal_classes",
    "pipeline_class",
    "pipeline_family",
    "sample_with_logprob",
]

_LAZY = {
    "DDPOTrainer": ".trainer",
    "PerPromptStatTracker": "..rl.stat_tracking",
    "ddim_step_with_logprob": ".ddim",
    "pipeline_class": ".families",
    "pipeline_family": ".families",
    "sample_with_logprob": ".ddim",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
