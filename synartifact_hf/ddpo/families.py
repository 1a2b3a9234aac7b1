"""DDPO's pipeline families: the UNet + DDIM ones of the shared seam `synartifact_hf.rl.families`
(``StableDiffusionFamily``, ``StableDiffusionXLFamily``). `pipeline_family` and `pipeline_class` refuse
flow-matching pipelines, naming `FlowGRPOTrainer` (``synartifact_hf.grpo``), which trains them."""

from __future__ import annotations

from ..rl.families import MAX_RESOLUTION, StableDiffusionFamily, StableDiffusionXLFamily
from ..rl.families import pipeline_family as _any_family

__all__ = ["MAX_RESOLUTION", "StableDiffusionFamily", "StableDiffusionXLFamily", "pipeline_class", "pipeline_family"]

_FLOW_HINT = (
    "flow-matching pipelines (SD3 / SD3.5, FLUX) have no DDIM step log-probabilities: train them with "
    "synartifact_hf.grpo.FlowGRPOTrainer"
)


def pipeline_family(pipeline, resolution: int | None = None):
    """The `StableDiffusionFamily` / `StableDiffusionXLFamily` of ``pipeline``; ``resolution`` (pixels
    per side) defaults to the pipeline's own (``unet.config.sample_size * vae_scale_factor``)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if not isinstance(pipeline, (StableDiffusionPipeline, StableDiffusionXLPipeline)):
        from diffusers import FluxPipeline, StableDiffusion3Pipeline

        hint = _FLOW_HINT if isinstance(pipeline, (FluxPipeline, StableDiffusion3Pipeline)) else (
            "Flow-matching pipelines (SD3, FLUX) go to synartifact_hf.grpo.FlowGRPOTrainer"
        )
        raise TypeError(
            "DDPOTrainer takes a diffusers StableDiffusionPipeline (SD 1.x/2.x) or StableDiffusionXLPipeline; got "
            f"{type(pipeline).__name__}. {hint[0].upper()}{hint[1:]}."
        )
    return _any_family(pipeline, resolution)


def pipeline_class(pretrained: str, revision: str | None = None):
    """The diffusers pipeline class DDPO uses for a checkpoint (Hub id or folder), chosen from its
    ``model_index.json`` ``_class_name``: ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    from ..rl.families import checkpoint_pipeline_class

    return checkpoint_pipeline_class(pretrained, (StableDiffusionPipeline, StableDiffusionXLPipeline), "DDPO",
                                     revision=revision, flow_hint=_FLOW_HINT)
