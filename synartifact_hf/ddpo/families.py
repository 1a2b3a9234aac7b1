"""What differs between Stable Diffusion pipeline families for DDPO, behind one small interface.

`pipeline_family(pipe, resolution)` wraps a diffusers pipeline:

- `StableDiffusionFamily` (``StableDiffusionPipeline``: SD 1.x, 2.x, 2.x-v): one CLIP text encoder; the
  UNet is conditioned on its hidden states; the VAE decodes in its own dtype, as the pipeline does.
- `StableDiffusionXLFamily` (``StableDiffusionXLPipeline``): both text encoders' hidden states, plus the
  UNet's ``added_cond_kwargs``: the pooled projection of ``text_encoder_2`` and the six time ids
  (original size, crop corner, target size). The VAE is upcast to float32 for decoding when its config
  says ``force_upcast`` (the SDXL VAE overflows in fp16), as the pipeline does.

Prompt encoding is the pipeline's own ``encode_prompt`` and the time ids its ``_get_add_time_ids``, so
a trajectory is conditioned exactly as ``pipe(prompt)`` conditions it, with and without guidance
(for SDXL, an empty negative prompt gives zero embeddings when ``force_zeros_for_empty_prompt``).

The trainer and the sampler see only this: ``encode(prompts)`` / ``encode_negative(text)`` return a
*condition*, a dict of tensors with the batch first (what the trainer stores with each trajectory);
``noise_pred(unet, latents, t, condition, negative, guidance_scale)``; ``decode(latents)`` (images in
[0, 1], float32); ``latent_shape(batch)``; ``freeze(device, dtype)``; ``lora_loader`` (the diffusers
class whose ``save_lora_weights`` / ``lora_state_dict`` read and write the family's LoRA format).
"""

from __future__ import annotations

import torch

__all__ = ["MAX_RESOLUTION", "StableDiffusionFamily", "StableDiffusionXLFamily", "pipeline_class", "pipeline_family"]

MAX_RESOLUTION = 4096  # pixels per side; SDXL's native 1024 with room for upscaled variants


def pipeline_family(pipeline, resolution: int | None = None):
    """The `StableDiffusionFamily` / `StableDiffusionXLFamily` of ``pipeline``; ``resolution`` (pixels
    per side) defaults to the pipeline's own (``unet.config.sample_size * vae_scale_factor``)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if isinstance(pipeline, StableDiffusionXLPipeline):
        return StableDiffusionXLFamily(pipeline, resolution)
    if isinstance(pipeline, StableDiffusionPipeline):
        return StableDiffusionFamily(pipeline, resolution)
    raise TypeError(
        "DDPOTrainer takes a diffusers StableDiffusionPipeline (SD 1.x/2.x) or StableDiffusionXLPipeline; got "
        f"{type(pipeline).__name__}. Flow-matching pipelines (SD3, FLUX) have no DDIM step log-probabilities."
    )


def pipeline_class(pretrained: str, revision: str | None = None):
    """The diffusers pipeline class DDPO uses for a checkpoint (Hub id or folder), chosen from its
    ``model_index.json`` ``_class_name``: ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline``."""
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    name = DiffusionPipeline.load_config(pretrained, revision=revision).get("_class_name")
    supported = {cls.__name__: cls for cls in (StableDiffusionPipeline, StableDiffusionXLPipeline)}
    if name not in supported:
        raise ValueError(
            f"{pretrained}/model_index.json names _class_name={name!r}; DDPO supports {sorted(supported)} "
            "(flow-matching pipelines such as SD3 and FLUX have no DDIM step log-probabilities)"
        )
    return supported[name]


class StableDiffusionFamily:
    """SD 1.x / 2.x: ``encoder_hidden_states`` only."""

    components = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
    text_encoders = ("text_encoder",)

    def __init__(self, pipeline, resolution: int | None = None):
        for part in self.components:
            if getattr(pipeline, part, None) is None:
                raise TypeError(f"{type(pipeline).__name__} has no {part!r} component; DDPO needs {self.components}")
        self.pipeline = pipeline
        scale = pipeline.vae_scale_factor
        side = resolution or pipeline.unet.config.sample_size * scale
        if not isinstance(side, int) or not 0 < side <= MAX_RESOLUTION or side % scale:
            raise ValueError(
                f"DDPOConfig.resolution must be a multiple of the VAE's scale factor {scale} in (0, {MAX_RESOLUTION}]; "
                f"got {side!r}"
            )
        self.height = self.width = side
        self.device = pipeline.unet.device

    @property
    def scheduler(self):
        return self.pipeline.scheduler

    @property
    def lora_loader(self):
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline

    def freeze(self, device, dtype: torch.dtype):
        """Move the frozen text encoder(s) and VAE to ``device`` and ``dtype``, without gradients."""
        for name in (*self.text_encoders, "vae"):
            module = getattr(self.pipeline, name)
            module.requires_grad_(False).to(device)
            if module.dtype != dtype:
                module.to(dtype=dtype)
        self.device = torch.device(device)

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        scale = self.pipeline.vae_scale_factor
        return (batch, self.pipeline.unet.config.in_channels, self.height // scale, self.width // scale)

    @torch.no_grad()
    def encode(self, prompts) -> dict[str, torch.Tensor]:
        out = self.pipeline.encode_prompt(
            prompt=list(prompts), device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return self._condition(out, negative=False)

    @torch.no_grad()
    def encode_negative(self, negative_prompt: str) -> dict[str, torch.Tensor]:
        """The unconditional side of guidance (batch 1), as the pipeline builds it for
        ``negative_prompt`` ('' = the pipeline's default, i.e. ``negative_prompt=None``)."""
        out = self.pipeline.encode_prompt(
            prompt=[""], device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=True,
            negative_prompt=[negative_prompt] if negative_prompt else None,
        )
        return self._condition(out, negative=True)

    def _condition(self, out, negative: bool) -> dict[str, torch.Tensor]:
        return {"encoder_hidden_states": out[int(negative)]}

    def unet_kwargs(self, condition: dict[str, torch.Tensor]) -> dict:
        return {"encoder_hidden_states": condition["encoder_hidden_states"]}

    def noise_pred(self, unet, latents, timesteps, condition, negative=None, guidance_scale: float = 1.0):
        """The UNet's prediction, guided (``uncond + scale * (cond - uncond)``) iff ``negative`` is given;
        the one forward pass of both sampling and training."""
        if negative is not None:
            n = latents.shape[0]
            condition = {k: torch.cat([negative[k].expand(n, *negative[k].shape[1:]), v]) for k, v in condition.items()}
            latents = torch.cat([latents] * 2)
            if torch.is_tensor(timesteps) and timesteps.ndim:
                timesteps = torch.cat([timesteps] * 2)
        out = unet(latents, timesteps, **self.unet_kwargs(condition)).sample
        if negative is None:
            return out
        uncond, cond = out.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipeline.vae
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return (decoded.float() / 2 + 0.5).clamp(0, 1)


class StableDiffusionXLFamily(StableDiffusionFamily):
    """SDXL: concatenated hidden states of both text encoders, plus ``text_embeds`` (pooled) and
    ``time_ids`` as ``added_cond_kwargs``; float32 VAE decoding when ``force_upcast``."""

    components = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    text_encoders = ("text_encoder", "text_encoder_2")

    def __init__(self, pipeline, resolution: int | None = None):
        super().__init__(pipeline, resolution)
        if pipeline.unet.config.addition_embed_type != "text_time":
            raise TypeError(
                f"the SDXL pipeline's UNet has addition_embed_type={pipeline.unet.config.addition_embed_type!r}; "
                "SDXL conditioning needs 'text_time'"
            )
        self._time_ids = None

    @property
    def lora_loader(self):
        from diffusers import StableDiffusionXLPipeline

        return StableDiffusionXLPipeline

    def freeze(self, device, dtype: torch.dtype):
        super().freeze(device, dtype)
        self._time_ids = None  # rebuilt in the new dtype / device

    @property
    def time_ids(self) -> torch.Tensor:
        """(1, 6): original size, crop top-left (0, 0), target size = the training resolution, as the
        pipeline builds them for ``pipe(prompt, height=..., width=...)``."""
        if self._time_ids is None:
            size = (self.height, self.width)
            self._time_ids = self.pipeline._get_add_time_ids(
                size, (0, 0), size, dtype=self.pipeline.text_encoder_2.dtype,
                text_encoder_projection_dim=self.pipeline.text_encoder_2.config.projection_dim,
            ).to(self.device)
        return self._time_ids

    def _condition(self, out, negative: bool) -> dict[str, torch.Tensor]:
        embeds, negative_embeds, pooled, negative_pooled = out
        if negative:
            return {"encoder_hidden_states": negative_embeds, "text_embeds": negative_pooled}
        return {"encoder_hidden_states": embeds, "text_embeds": pooled}

    def unet_kwargs(self, condition: dict[str, torch.Tensor]) -> dict:
        n = condition["text_embeds"].shape[0]
        return {
            "encoder_hidden_states": condition["encoder_hidden_states"],
            "added_cond_kwargs": {"text_embeds": condition["text_embeds"], "time_ids": self.time_ids.expand(n, -1)},
        }

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipeline.vae
        # as StableDiffusionXLPipeline.__call__: a fp16 VAE marked force_upcast decodes in float32 (it
        # overflows in fp16) and goes back to fp16 afterwards
        upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        if upcast:
            vae.to(dtype=torch.float32)
        try:
            latents = latents.to(vae.dtype)
            mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
            if mean is not None and std is not None:
                mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
                std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
                latents = latents * std / vae.config.scaling_factor + mean
            else:
                latents = latents / vae.config.scaling_factor
            decoded = vae.decode(latents).sample
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
        return (decoded.float() / 2 + 0.5).clamp(0, 1)
