"""What differs between diffusers text-to-image pipeline families for RL fine-tuning, behind one small interface
shared by DDPO (UNet + DDIM) and Flow-GRPO (rectified-flow transformers).

`pipeline_family(pipe, resolution)` wraps a diffusers pipeline:

- `StableDiffusionFamily` (``StableDiffusionPipeline``: SD 1.x, 2.x, 2.x-v): one CLIP text encoder; the
  UNet is conditioned on its hidden states; the VAE decodes in its own dtype, as the pipeline does.
- `StableDiffusionXLFamily` (``StableDiffusionXLPipeline``): both text encoders' hidden states, plus the
  UNet's ``added_cond_kwargs``: the pooled projection of ``text_encoder_2`` and the six time ids
  (original size, crop corner, target size). A VAE whose config says ``force_upcast`` (the SDXL VAE
  overflows in fp16) is cast to float32 ONCE, the first time it decodes, and back to its dtype by
  `finish` (the trainer calls it when ``train()`` ends), instead of twice per sampled batch.
- `StableDiffusion3Family` (``StableDiffusion3Pipeline``: SD3, SD3.5; ``text_encoder_3`` (T5) present or
  dropped): the joint transformer gets ``encoder_hidden_states`` and ``pooled_projections``; latents
  decode with the VAE's scaling *and shift* factors.
- `FluxFamily` (``FluxPipeline``: FLUX.1-dev / schnell style): latents are packed 2x2 into tokens, the
  transformer gets RoPE ids for text and image tokens, the timestep / 1000, and (FLUX.1-dev) the
  distilled guidance as an embedding; true classifier-free guidance is ``FluxPipeline``'s ``true_cfg_scale``.

Prompt encoding is the pipeline's own ``encode_prompt`` (and SDXL's time ids its ``_get_add_time_ids``),
so a trajectory is conditioned exactly as ``pipe(prompt)`` conditions it, with and without guidance.

The trainers and samplers see only this: ``encode(prompts)`` / ``encode_negative(text)`` return a
*condition*, a dict of tensors with the batch first (what a trainer stores with each trajectory);
``with_negative(condition, negative)`` concatenates the unconditional side ONCE per batch (the paired
condition every guided call of that batch reuses); ``predict(model, latents, t, condition,
guidance_scale=None)`` is the model's one forward pass (guided iff ``guidance_scale`` is given, with a
paired condition); ``decode(latents)`` (images in [0, 1], float32); ``latent_shape(batch)``;
``freeze(device, dtype)``; ``kind`` (``"ddim"`` or ``"flow"``); ``model_name`` (``"unet"`` /
``"transformer"``); ``lora_pipeline_class`` (the diffusers pipeline class whose ``save_lora_weights`` /
``load_lora_weights`` write and read the family's LoRA format). Flow families add ``set_timesteps``,
``pack(noise)`` and ``model_timestep``.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = [
    "MAX_RESOLUTION", "FluxFamily", "StableDiffusion3Family", "StableDiffusionFamily", "StableDiffusionXLFamily",
    "checkpoint_pipeline_class", "pipeline_family",
]

MAX_RESOLUTION = 4096  # pixels per side; SDXL's / SD3's / FLUX's native 1024 with room for upscaled variants


def pipeline_family(pipeline, resolution: int | None = None):
    """The family of ``pipeline`` (see the module docstring); ``resolution`` (pixels per side) defaults to
    the pipeline's own. Raises TypeError for any other pipeline class."""
    from diffusers import (
        FluxPipeline,
        StableDiffusion3Pipeline,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )

    for cls, family in (
        (StableDiffusionXLPipeline, StableDiffusionXLFamily),
        (StableDiffusionPipeline, StableDiffusionFamily),
        (StableDiffusion3Pipeline, StableDiffusion3Family),
        (FluxPipeline, FluxFamily),
    ):
        if isinstance(pipeline, cls):
            return family(pipeline, resolution)
    raise TypeError(
        "expected a diffusers StableDiffusionPipeline or StableDiffusionXLPipeline (DDPOTrainer), or a "
        f"StableDiffusion3Pipeline or FluxPipeline (FlowGRPOTrainer); got {type(pipeline).__name__}"
    )


class _Family:
    """What every family shares: component checks, the resolution rule, freezing, pairing with the negative."""

    kind = ""
    model_name = ""
    components: tuple[str, ...] = ()
    optional_text_encoders: tuple[str, ...] = ()

    def __init__(self, pipeline, resolution: int | None, native: int, multiple: int):
        for part in self.components:
            if getattr(pipeline, part, None) is None:
                raise TypeError(f"{type(pipeline).__name__} has no {part!r} component; it needs {self.components}")
        self.pipeline = pipeline
        side = resolution or native
        if not isinstance(side, int) or not 0 < side <= MAX_RESOLUTION or side % multiple:
            what = f"the VAE's scale factor {multiple}" if multiple == pipeline.vae_scale_factor else (
                f"{multiple} (the VAE's scale factor {pipeline.vae_scale_factor} x {multiple // pipeline.vae_scale_factor}"
                " for the transformer's 2x2 patches)")
            raise ValueError(f"config.resolution must be a multiple of {what} in (0, {MAX_RESOLUTION}]; got {side!r}")
        self.height = self.width = side
        self.device = getattr(pipeline, self.model_name).device
        self._vae_dtype = None  # set while the VAE is upcast for decoding

    @property
    def text_encoders(self) -> tuple[str, ...]:
        required = tuple(n for n in self.components if n.startswith("text_encoder"))
        return required + tuple(n for n in self.optional_text_encoders if getattr(self.pipeline, n, None) is not None)

    @property
    def scheduler(self):
        return self.pipeline.scheduler

    @property
    def model(self):
        return getattr(self.pipeline, self.model_name)

    def freeze(self, device, dtype: torch.dtype):
        """Move the frozen text encoder(s) and VAE to ``device`` and ``dtype``, without gradients, in eval mode
        (T5's dropout would otherwise make every encoding of a prompt different)."""
        for name in (*self.text_encoders, "vae"):
            module = getattr(self.pipeline, name)
            module.requires_grad_(False).eval().to(device)
            if module.dtype != dtype:
                module.to(dtype=dtype)
        self._vae_dtype = None
        self.device = torch.device(device)

    @contextlib.contextmanager
    def text_encoders_on(self, device):
        """Run the block with the text encoders on ``device`` and put them back where they were after it (so
        that they can live off the accelerator while the denoiser trains)."""
        modules = [getattr(self.pipeline, n) for n in self.text_encoders]
        homes = [m.device for m in modules]
        for module in modules:
            module.to(device)
        try:
            yield
        finally:
            for module, home in zip(modules, homes):
                module.to(home)

    def with_negative(self, condition: dict[str, torch.Tensor], negative: dict[str, torch.Tensor]) -> dict:
        """The paired condition ``[negative] * B + condition`` that a guided ``predict`` takes: built once per
        batch, reused by every step of that batch."""
        n = next(iter(condition.values())).shape[0]
        return {k: torch.cat([negative[k].expand(n, *negative[k].shape[1:]), v]) for k, v in condition.items()}

    @staticmethod
    def _guide(out: torch.Tensor, guidance_scale: float | None) -> torch.Tensor:
        if guidance_scale is None:
            return out
        uncond, cond = out.chunk(2)
        return uncond + guidance_scale * (cond - uncond)

    @staticmethod
    def _doubled(latents, timesteps, guided: bool):
        if not guided:
            return latents, timesteps
        if torch.is_tensor(timesteps) and timesteps.ndim:
            timesteps = torch.cat([timesteps] * 2)
        return torch.cat([latents] * 2), timesteps

    def _upcast_vae(self):
        """Cast a fp16 VAE marked ``force_upcast`` to float32 once (it overflows in fp16); `finish` casts it back."""
        vae = self.pipeline.vae
        if vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
            self._vae_dtype = vae.dtype
            vae.to(dtype=torch.float32)

    def finish(self):
        """Give the VAE back the dtype it had before `_upcast_vae`, so that the pipeline runs as before."""
        if self._vae_dtype is not None:
            self.pipeline.vae.to(dtype=self._vae_dtype)
            self._vae_dtype = None


# ------------------------------------------------------------------------------------------------- UNet + DDIM


class StableDiffusionFamily(_Family):
    """SD 1.x / 2.x: ``encoder_hidden_states`` only."""

    kind = "ddim"
    model_name = "unet"
    components = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")

    def __init__(self, pipeline, resolution: int | None = None):
        scale = pipeline.vae_scale_factor
        native = pipeline.unet.config.sample_size * scale if getattr(pipeline, "unet", None) is not None else None
        super().__init__(pipeline, resolution, native, scale)

    @property
    def lora_pipeline_class(self):
        from diffusers import StableDiffusionPipeline

        return StableDiffusionPipeline

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

    def predict(self, unet, latents, timesteps, condition, guidance_scale: float | None = None):
        """The UNet's noise prediction, guided (``uncond + scale * (cond - uncond)``) iff ``guidance_scale``
        is given, in which case ``condition`` is ``with_negative(...)``'s pair; the one forward pass of both
        sampling and training."""
        latents, timesteps = self._doubled(latents, timesteps, guidance_scale is not None)
        return self._guide(unet(latents, timesteps, **self.unet_kwargs(condition)).sample, guidance_scale)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipeline.vae
        decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
        return (decoded.float() / 2 + 0.5).clamp(0, 1)


class StableDiffusionXLFamily(StableDiffusionFamily):
    """SDXL: concatenated hidden states of both text encoders, plus ``text_embeds`` (pooled) and
    ``time_ids`` as ``added_cond_kwargs``; float32 VAE decoding when ``force_upcast``."""

    components = ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")

    def __init__(self, pipeline, resolution: int | None = None):
        super().__init__(pipeline, resolution)
        if pipeline.unet.config.addition_embed_type != "text_time":
            raise TypeError(
                f"the SDXL pipeline's UNet has addition_embed_type={pipeline.unet.config.addition_embed_type!r}; "
                "SDXL conditioning needs 'text_time'"
            )
        self._time_ids = None

    @property
    def lora_pipeline_class(self):
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
        self._upcast_vae()  # as StableDiffusionXLPipeline.__call__, but once, not per batch
        latents = latents.to(vae.dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is not None and std is not None:
            mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
            std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor
        return (vae.decode(latents).sample.float() / 2 + 0.5).clamp(0, 1)


# ------------------------------------------------------------------------------------------------- flow matching


class _FlowFamily(_Family):
    kind = "flow"
    model_name = "transformer"

    def set_timesteps(self, num_inference_steps: int, device):
        """Set the scheduler's timesteps exactly as the pipeline's ``__call__`` does at this resolution."""
        raise NotImplementedError

    def _set_timesteps(self, module, num_inference_steps: int, device, sigmas=None, mu=None):
        kwargs = {} if mu is None else {"mu": mu}
        module.retrieve_timesteps(self.scheduler, num_inference_steps, device, sigmas=sigmas, **kwargs)
        return self.scheduler.timesteps

    def _shift(self, module, image_seq_len: int, default_max_shift: float) -> float:
        cfg = self.scheduler.config
        return module.calculate_shift(
            image_seq_len, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
            cfg.get("base_shift", 0.5), cfg.get("max_shift", default_max_shift),
        )

    def pack(self, noise: torch.Tensor) -> torch.Tensor:
        """Initial latents in the layout the transformer takes, from noise of ``latent_shape``."""
        return noise

    def model_timestep(self, timesteps: torch.Tensor, dtype) -> torch.Tensor:
        return timesteps

    def _vae_decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.pipeline.vae
        latents = latents.to(vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor
        return (vae.decode(latents).sample.float() / 2 + 0.5).clamp(0, 1)


class StableDiffusion3Family(_FlowFamily):
    """SD3 / SD3.5: two CLIP encoders (+ T5 when present) -> ``encoder_hidden_states`` and ``pooled_projections``."""

    components = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")
    optional_text_encoders = ("text_encoder_3",)

    def __init__(self, pipeline, resolution: int | None = None):
        transformer = getattr(pipeline, "transformer", None)
        scale = pipeline.vae_scale_factor
        native = transformer.config.sample_size * scale if transformer is not None else None
        super().__init__(pipeline, resolution, native, scale * (transformer.config.patch_size if transformer else 1))

    @property
    def lora_pipeline_class(self):
        from diffusers import StableDiffusion3Pipeline

        return StableDiffusion3Pipeline

    def set_timesteps(self, num_inference_steps: int, device):
        from diffusers.pipelines.stable_diffusion_3 import pipeline_stable_diffusion_3 as module

        mu = None
        if self.scheduler.config.get("use_dynamic_shifting", None):
            _, _, h, w = self.latent_shape(1)
            patch = self.model.config.patch_size
            mu = self._shift(module, (h // patch) * (w // patch), 1.16)
        return self._set_timesteps(module, num_inference_steps, device, mu=mu)

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        scale = self.pipeline.vae_scale_factor
        return (batch, self.model.config.in_channels, self.height // scale, self.width // scale)

    @torch.no_grad()
    def encode(self, prompts) -> dict[str, torch.Tensor]:
        out = self.pipeline.encode_prompt(
            prompt=list(prompts), prompt_2=None, prompt_3=None, device=self.device, num_images_per_prompt=1,
            do_classifier_free_guidance=False,
        )
        return {"encoder_hidden_states": out[0], "pooled_projections": out[2]}

    @torch.no_grad()
    def encode_negative(self, negative_prompt: str) -> dict[str, torch.Tensor]:
        """The unconditional side of guidance (batch 1), as ``pipe(..., negative_prompt=negative_prompt)``
        builds it ('' and None are the same there)."""
        out = self.pipeline.encode_prompt(
            prompt=[""], prompt_2=None, prompt_3=None, device=self.device, num_images_per_prompt=1,
            do_classifier_free_guidance=True, negative_prompt=[negative_prompt],
        )
        return {"encoder_hidden_states": out[1], "pooled_projections": out[3]}

    def predict(self, transformer, latents, timesteps, condition, guidance_scale: float | None = None):
        """The transformer's velocity, guided iff ``guidance_scale`` is given (then ``condition`` is paired)."""
        latents, timesteps = self._doubled(latents, timesteps, guidance_scale is not None)
        out = transformer(
            hidden_states=latents, timestep=timesteps, encoder_hidden_states=condition["encoder_hidden_states"],
            pooled_projections=condition["pooled_projections"], return_dict=False,
        )[0]
        return self._guide(out, guidance_scale)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self._vae_decode(latents)


class FluxFamily(_FlowFamily):
    """FLUX.1: CLIP pooled + T5 hidden states, packed 2x2 latent tokens with RoPE ids, the timestep / 1000,
    and (``guidance_embeds``) the distilled guidance ``embedded_guidance_scale`` as an input."""

    components = ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler")

    def __init__(self, pipeline, resolution: int | None = None, embedded_guidance_scale: float = 3.5):
        scale = pipeline.vae_scale_factor
        # FluxPipeline's default: default_sample_size (128) latent pixels x the VAE's scale factor
        super().__init__(pipeline, resolution, pipeline.default_sample_size * scale, scale * 2)
        self.embedded_guidance_scale = embedded_guidance_scale
        self._image_ids = self._text_ids = None

    @property
    def lora_pipeline_class(self):
        from diffusers import FluxPipeline

        return FluxPipeline

    def freeze(self, device, dtype: torch.dtype):
        super().freeze(device, dtype)
        self._image_ids = self._text_ids = None

    def set_timesteps(self, num_inference_steps: int, device):
        import numpy as np
        from diffusers.pipelines.flux import pipeline_flux as module

        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if self.scheduler.config.get("use_flow_sigmas", False):
            sigmas = None
        _, _, h, w = self.latent_shape(1)
        mu = self._shift(module, (h // 2) * (w // 2), 1.15)
        return self._set_timesteps(module, num_inference_steps, device, sigmas=sigmas, mu=mu)

    def latent_shape(self, batch: int) -> tuple[int, ...]:
        scale = self.pipeline.vae_scale_factor
        h, w = 2 * (self.height // (scale * 2)), 2 * (self.width // (scale * 2))
        return (batch, self.model.config.in_channels // 4, h, w)

    def pack(self, noise: torch.Tensor) -> torch.Tensor:
        b, c, h, w = noise.shape
        return self.pipeline._pack_latents(noise, b, c, h, w)

    @property
    def image_ids(self) -> torch.Tensor:
        if self._image_ids is None:
            _, _, h, w = self.latent_shape(1)
            dtype = self.pipeline.text_encoder_2.dtype
            self._image_ids = self.pipeline._prepare_latent_image_ids(1, h // 2, w // 2, self.device, dtype)
        return self._image_ids

    @torch.no_grad()
    def encode(self, prompts) -> dict[str, torch.Tensor]:
        embeds, pooled, text_ids = self.pipeline.encode_prompt(
            prompt=list(prompts), prompt_2=None, device=self.device, num_images_per_prompt=1
        )
        self._text_ids = text_ids  # the same (zeros) for every prompt: not stored per trajectory
        return {"encoder_hidden_states": embeds, "pooled_projections": pooled}

    @torch.no_grad()
    def encode_negative(self, negative_prompt: str) -> dict[str, torch.Tensor]:
        """The negative side of ``FluxPipeline``'s true CFG (``negative_prompt``, batch 1)."""
        return self.encode([negative_prompt])

    @property
    def text_ids(self) -> torch.Tensor:
        if self._text_ids is None:
            self.encode([""])
        return self._text_ids

    def model_timestep(self, timesteps: torch.Tensor, dtype) -> torch.Tensor:
        return timesteps.to(dtype) / 1000

    def predict(self, transformer, latents, timesteps, condition, guidance_scale: float | None = None):
        """The transformer's velocity; with ``guidance_scale`` (a paired condition) FluxPipeline's true CFG
        ``neg + scale * (pos - neg)``, on top of the embedded guidance."""
        latents, timesteps = self._doubled(latents, timesteps, guidance_scale is not None)
        guidance = None
        if transformer.config.guidance_embeds:
            guidance = torch.full((latents.shape[0],), self.embedded_guidance_scale, device=latents.device,
                                  dtype=torch.float32)
        out = transformer(
            hidden_states=latents, timestep=self.model_timestep(timesteps, latents.dtype), guidance=guidance,
            pooled_projections=condition["pooled_projections"], encoder_hidden_states=condition["encoder_hidden_states"],
            txt_ids=self.text_ids, img_ids=self.image_ids, return_dict=False,
        )[0]
        return self._guide(out, guidance_scale)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        latents = self.pipeline._unpack_latents(latents, self.height, self.width, self.pipeline.vae_scale_factor)
        return self._vae_decode(latents)


def checkpoint_pipeline_class(pretrained: str, classes: tuple, trainer: str, revision: str | None = None,
                              flow_hint: str = ""):
    """The class among ``classes`` that a checkpoint's ``model_index.json`` names (``_class_name``); a clear
    error naming the supported classes (and ``flow_hint``) otherwise."""
    from diffusers import DiffusionPipeline

    name = DiffusionPipeline.load_config(pretrained, revision=revision).get("_class_name")
    supported = {cls.__name__: cls for cls in classes}
    if name not in supported:
        raise ValueError(
            f"{pretrained}/model_index.json names _class_name={name!r}; {trainer} supports {sorted(supported)}"
            + (f" ({flow_hint})" if flow_hint else "")
        )
    return supported[name]
