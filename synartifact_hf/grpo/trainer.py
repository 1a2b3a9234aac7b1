"""`FlowGRPOTrainer`: Flow-GRPO (Liu et al. 2025, arXiv 2505.05470) for diffusers' rectified-flow pipelines —
``StableDiffusion3Pipeline`` (SD3, SD3.5; T5 present or dropped) and ``FluxPipeline`` (FLUX.1) — on the RL
core DDPO also runs on (`synartifact_hf.rl`: rewards, LoRA, checkpoints, logging, multi-process).

Each epoch, per process: ``sample_num_batches_per_epoch`` batches of ``sample_batch_size`` images, each
batch ``sample_batch_size / num_images_per_prompt`` prompts sampled ``num_images_per_prompt`` times (a GRPO
group; optionally from the same initial noise). Prompts are encoded once per batch (each distinct prompt
once). Steps inside an SDE window (``sde_window_size`` steps placed at random in ``sde_window_range`` per
batch; the whole range = plain Flow-GRPO) are SDE steps whose latents and log-probs are stored; the others
are the pipeline's Euler ODE steps. Rewards are gathered over processes and normalised within each prompt's
group (`group_advantages`), so N processes give the same advantages as one. Training, for every stored
step:

    L = mean(max(-A * r, -A * clip(r, 1 - eps, 1 + eps))) + beta * KL(pi_theta || pi_ref),

``r`` the importance ratio of the step, the KL the closed form between the two Gaussian steps,
mean((mu_theta - mu_ref)^2 / (2 std^2)), where the reference policy is the same transformer with its LoRA
adapters disabled (no second copy of the model). Memory: ``offload_text_encoders`` keeps the text encoders
(T5-XXL alone is 4.7 B parameters) on the CPU except while an epoch's prompts are encoded, and
``gradient_checkpointing`` recomputes the transformer's activations.
"""

from __future__ import annotations

import numpy as np
import torch

from ..rl.families import pipeline_family
from ..rl.objective import clipped_policy_loss
from ..rl.stat_tracking import group_advantages
from ..rl.trainer import LORA_WEIGHT_NAME, RLTrainer
from .config import FlowGRPOConfig
from .sde import draw_noise, sample_flow_with_logprob, sde_step_with_logprob

__all__ = ["FlowGRPOTrainer", "LORA_WEIGHT_NAME", "flow_pipeline_class", "flow_pipeline_family"]


def flow_pipeline_family(pipeline, resolution: int | None = None, embedded_guidance_scale: float = 3.5):
    """The `StableDiffusion3Family` / `FluxFamily` of ``pipeline``; a UNet pipeline is refused naming
    ``DDPOTrainer``."""
    from diffusers import (
        FluxPipeline,
        StableDiffusion3Pipeline,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )

    if isinstance(pipeline, (StableDiffusionPipeline, StableDiffusionXLPipeline)):
        raise TypeError(
            f"FlowGRPOTrainer trains flow-matching pipelines (StableDiffusion3Pipeline, FluxPipeline); "
            f"{type(pipeline).__name__} is a UNet + DDIM pipeline: train it with synartifact_hf.ddpo.DDPOTrainer"
        )
    if not isinstance(pipeline, (StableDiffusion3Pipeline, FluxPipeline)):
        raise TypeError(
            "FlowGRPOTrainer takes a diffusers StableDiffusion3Pipeline (SD3, SD3.5) or FluxPipeline (FLUX.1); got "
            f"{type(pipeline).__name__}"
        )
    family = pipeline_family(pipeline, resolution)
    if isinstance(pipeline, FluxPipeline):
        family.embedded_guidance_scale = embedded_guidance_scale
    return family


def flow_pipeline_class(pretrained: str, revision: str | None = None):
    """``StableDiffusion3Pipeline`` or ``FluxPipeline``, as a checkpoint's ``model_index.json`` names it."""
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    from ..rl.families import checkpoint_pipeline_class

    return checkpoint_pipeline_class(
        pretrained, (StableDiffusion3Pipeline, FluxPipeline), "Flow-GRPO", revision=revision,
        flow_hint="Stable Diffusion 1.x/2.x/XL (UNet + DDIM) are trained by synartifact_hf.ddpo.DDPOTrainer",
    )


def _generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of integers (seed, epoch, batch, image, stream)."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> 1))


class FlowGRPOTrainer(RLTrainer):
    """Flow-GRPO fine-tuning of an SD3 / SD3.5 / FLUX.1 pipeline's transformer (LoRA or full).

    Args:
        config: `FlowGRPOConfig`.
        reward_function: ``reward_function(images, prompts, metadata) -> (rewards, info)``, DDPO's contract
            (``ArtifactReward`` and every DDPO reward plug in unchanged).
        prompt_function: ``prompt_function() -> (prompt, metadata)``, called once per group.
        pipeline: a diffusers ``StableDiffusion3Pipeline`` or ``FluxPipeline`` with its
            ``FlowMatchEulerDiscreteScheduler``. Trained in place.
        image_samples_hook: optional ``hook(prompt_image_data, global_step, tracker)`` as DDPO's.

    After ``train()``, ``history`` holds one dict per epoch (reward mean/std, loss, policy loss, KL, approx
    KL, clip fraction). Initial and SDE noise come from per-image generators keyed by (seed, epoch, batch,
    image index over all processes), so a run's images do not depend on how many processes share it.
    """

    method = "Flow-GRPO"
    config_class = FlowGRPOConfig

    # the constructor is RLTrainer's: (config, reward_function, prompt_function, pipeline, image_samples_hook=None)
    def _pipeline_family(self, pipeline, config):
        family = flow_pipeline_family(pipeline, config.resolution, config.embedded_guidance_scale)
        _check_scheduler(pipeline.scheduler)
        return family

    def _init_method(self):
        cfg = self.config
        if cfg.offload_text_encoders:
            for name in self.family.text_encoders:
                getattr(self.pipeline, name).to("cpu")
        with self._encoders_ready():
            self.negative_condition = self.family.encode_negative(cfg.negative_prompts)
        # the schedule the stored steps are scored on (sampling sets the same one again)
        self.family.set_timesteps(cfg.sample_num_steps, self.accelerator.device)

    def _encoders_ready(self):
        import contextlib

        if self.config.offload_text_encoders:
            return self.family.text_encoders_on(self.accelerator.device)
        return contextlib.nullcontext()

    @property
    def transformer(self):
        """The (accelerate-prepared) transformer being trained."""
        return self.model

    # ------------------------------------------------------------------ sampling and advantages
    def _draw_prompts(self):
        k = self.config.num_images_per_prompt
        drawn = [self.prompt_fn() for _ in range(self.config.sample_batch_size // k)]
        prompts = tuple(prompt for prompt, _ in drawn for _ in range(k))
        metadata = tuple(meta for _, meta in drawn for _ in range(k))
        return prompts, metadata

    def _encode(self, prompt_batches):
        k = self.config.num_images_per_prompt
        conditions = []
        with self._encoders_ready():  # one visit of the text encoders per epoch
            for prompts in prompt_batches:
                condition = self.family.encode(prompts[::k])  # each group's prompt once
                conditions.append({key: v.repeat_interleave(k, dim=0) for key, v in condition.items()})
        return conditions

    def sample_window(self, epoch: int, index: int) -> tuple[int, int]:
        """The [first, end) SDE steps of sampling batch ``index`` of ``epoch``: ``sde_window_size`` steps at a
        random place in ``sde_window_range``, the same on every process."""
        lo, hi = self.config.window_range
        size = self.num_train_timesteps
        start = lo + int(np.random.default_rng([self.config.seed, epoch, index]).integers(0, hi - lo - size + 1))
        return start, start + size

    def _sample_batch(self, epoch, index, prompts, condition):
        cfg = self.config
        n, k = len(prompts), cfg.num_images_per_prompt
        first = self.accelerator.process_index * cfg.sample_batch_size
        images = range(first, first + n)
        starts = [_generator(cfg.seed, epoch, index, i // k if cfg.same_latent else i, 0) for i in images]
        noise = draw_noise(self.family.latent_shape(n), starts, self.accelerator.device)
        out = sample_flow_with_logprob(
            self.family, condition, self.negative_condition if cfg.train_cfg else None,
            model=self.accelerator.unwrap_model(self.model), num_inference_steps=cfg.sample_num_steps,
            guidance_scale=cfg.guidance_scale, noise_level=cfg.noise_level, sde_type=cfg.sde_type,
            window=self.sample_window(epoch, index), latents=noise,
            generator=[_generator(cfg.seed, epoch, index, i, 1) for i in images], autocast=self.accelerator.autocast,
        )
        trajectory = {**condition, **{key: out[key] for key in ("timesteps", "latents", "next_latents", "log_probs")}}
        return trajectory, out["images"]

    def _advantages(self, prompts, rewards):
        return group_advantages(prompts, rewards)

    # ------------------------------------------------------------------ training
    def _training_condition(self, batch):
        condition = {k: batch[k] for k in self.negative_condition}
        return self.training_condition(condition)

    def training_condition(self, condition: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A stored condition as `calculate_loss` takes it: paired with the negative (once per training batch)
        when ``train_cfg``."""
        return self.family.with_negative(condition, self.negative_condition) if self.config.train_cfg else condition

    def _step_loss(self, batch, j, condition):
        return self.calculate_loss(
            batch["latents"][:, j], batch["timesteps"][:, j], batch["next_latents"][:, j], batch["log_probs"][:, j],
            batch["advantages"], condition,
        )

    def _step(self, model, latents, timesteps, next_latents, condition):
        cfg = self.config
        with self.accelerator.autocast():
            velocity = self.family.predict(model, latents, timesteps, condition, cfg.guidance_scale if cfg.train_cfg else None)
        return sde_step_with_logprob(self.family.scheduler, velocity, timesteps, latents, noise_level=cfg.noise_level,
                                     prev_sample=next_latents, sde_type=cfg.sde_type)

    def calculate_loss(self, latents, timesteps, next_latents, log_probs, advantages, condition) -> dict[str, torch.Tensor]:
        """Flow-GRPO's loss of one stored step for a batch: ``loss`` = ``policy_loss`` (PPO-clipped) + beta *
        ``kl``; also ``approx_kl`` and ``clipfrac``. ``condition``: as `training_condition` gives it."""
        cfg = self.config
        _, log_prob, mean, std = self._step(self.model, latents, timesteps, next_latents, condition)
        policy_loss, approx_kl, clipfrac = clipped_policy_loss(log_prob, log_probs, advantages, cfg.clip_range,
                                                               cfg.adv_clip_max)
        out = {"policy_loss": policy_loss, "approx_kl": approx_kl, "clipfrac": clipfrac}
        if cfg.beta > 0:
            transformer = self.accelerator.unwrap_model(self.model)
            with torch.no_grad():
                transformer.disable_adapters()  # the reference policy: the base weights, same module
                try:
                    _, _, ref_mean, _ = self._step(transformer, latents, timesteps, next_latents, condition)
                finally:
                    transformer.enable_adapters()
            kl = ((mean - ref_mean) ** 2 / (2 * std**2)).mean(dim=tuple(range(1, mean.ndim))).mean()
            out["kl"] = kl
            out["loss"] = policy_loss + cfg.beta * kl
        else:
            out["loss"] = policy_loss
        return out


def _check_scheduler(scheduler):
    from diffusers import FlowMatchEulerDiscreteScheduler

    if not isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        raise TypeError(
            f"Flow-GRPO's SDE is defined on FlowMatchEulerDiscreteScheduler's sigmas; the pipeline's scheduler is "
            f"{type(scheduler).__name__}: use pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(...)"
        )
    if scheduler.config.get("stochastic_sampling", False):
        raise ValueError("the FlowMatchEulerDiscreteScheduler has stochastic_sampling=True; Flow-GRPO brings its own "
                         "SDE: load the scheduler with stochastic_sampling=False")
