"""Flow-GRPO (Liu et al. 2025, arXiv 2505.05470; reference code ``yifan123/flow_grpo``) for the rectified-flow
text-to-image models on diffusers: SD3 / SD3.5 (``StableDiffusion3Pipeline``) and FLUX.1 (``FluxPipeline``),
with DDPO's reward and prompt contracts, so `ArtifactReward` plugs in unchanged.

- `FlowGRPOConfig` (``config.py``): every knob; DDPO's names for what both have.
- `FlowGRPOTrainer` (``trainer.py``): group sampling with an SDE window, group-relative advantages, the
  clipped objective + KL to the LoRA-disabled transformer.
- `sde_step_with_logprob`, `sample_flow_with_logprob` (``sde.py``): the flow SDE step (``"sde"`` or CPS)
  with its Gaussian log-probability, and the windowed sampler.
- `flow_pipeline_family`, `flow_pipeline_class`: the SD3 / FLUX families of the shared seam
  (`synartifact_hf.rl.families`) and the checkpoint's pipeline class.

The RL core (rewards, LoRA, checkpoints, logging, multi-process, stat tracking, prompt functions) is shared
with DDPO in `synartifact_hf.rl`. Importing this package is light; torch and diffusers load with its parts.
"""

from __future__ import annotations

import importlib

from ..rl.prompt_functions import ImageNetAnimalPrompts, PromptList

__all__ = [
    "FlowGRPOConfig",
    "FlowGRPOTrainer",
    "ImageNetAnimalPrompts",
    "PromptList",
    "flow_pipeline_class",
    "flow_pipeline_family",
    "sample_flow_with_logprob",
    "sde_step_with_logprob",
]

# name -> submodule; loaded on first access so that importing the package stays light
_LAZY = {"FlowGRPOConfig": ".config", "sample_flow_with_logprob": ".sde", "sde_step_with_logprob": ".sde"}
_LAZY.update(dict.fromkeys(("FlowGRPOTrainer", "flow_pipeline_class", "flow_pipeline_family"), ".trainer"))


def __getattr__(name):
    try:
        module = importlib.import_module(_LAZY[name], __name__)
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(module, name)
