"""`DDPOTrainer`: DDPO (Black et al. 2023, "Training Diffusion Models with Reinforcement Learning") for
diffusers' Stable Diffusion pipelines (SD 1.x, 2.x incl. v-prediction, SDXL), on accelerate + peft.

Each epoch: sample ``samples_per_epoch`` images with DDIM, keeping every step's latent and
log-probability; score them with ``reward_function``; turn rewards into advantages (batch or
per-prompt z-scores); then, for every stored step, re-evaluate its log-probability under the current
weights and minimize the PPO-clipped importance-weighted loss (the paper's Eq. 3)

    L = mean(max(-A * r, -A * clip(r, 1 - eps, 1 + eps))),   r = exp(log p_theta - log p_old),

one backward pass per timestep, the optimizer stepping every ``train_gradient_accumulation_steps``
training batches. The constructor mirrors TRL 0.23's ``DDPOTrainer(config, reward_function,
prompt_function, sd_pipeline, image_samples_hook=None)``, but takes a plain diffusers
``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline`` (with a ``DDIMScheduler``) instead of TRL's
wrapper. One sampling loop and one training loop serve every family; what differs (prompt encoding,
the UNet's extra conditioning, VAE decoding) sits in ``families.py``; what DDPO shares with Flow-GRPO
(reward collection, advantages' stat tracking, LoRA, checkpoints, logging, multi-process) in
`synartifact_hf.rl` — this module holds only DDPO's step kernel (DDIM) and its sampling.

Differences from TRL 0.23, each a fix: LoRA checkpoints resume into the SAME adapter the optimizer
updates (TRL loads a second adapter and then trains nothing); ``save_pretrained`` writes only
``pytorch_lora_weights.safetensors`` for LoRA (``load_lora_weights`` reads it) and a complete
pipeline for a full-UNet run; async rewards work; ``image_samples_hook`` gets ``None`` as tracker when
no tracker is configured instead of crashing; sampling and training use the same guidance setting,
so the importance ratio is exactly 1 before the first update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..rl.objective import clipped_policy_loss
from ..rl.stat_tracking import PerPromptStatTracker, normalize_rewards
from ..rl.trainer import LORA_WEIGHT_NAME, RLTrainer
from .config import DDPOConfig
from .ddim import ddim_step_with_logprob, sample_with_logprob
from .families import pipeline_family

__all__ = ["DDPOTrainer", "LORA_WEIGHT_NAME"]


class DDPOTrainer(RLTrainer):
    """DDPO fine-tuning of a Stable Diffusion pipeline's UNet (LoRA or full).

    Args:
        config: `DDPOConfig`.
        reward_function: ``reward_function(images, prompts, metadata) -> (rewards, info)``; ``images``
            a float tensor (B, 3, H, W) in [0, 1], ``prompts`` a tuple of B strings, ``metadata`` a tuple
            of the prompt function's metadata; ``rewards`` anything ``torch.as_tensor`` turns into B
            finite numbers. Runs in a worker thread when ``config.async_reward_computation``.
        prompt_function: ``prompt_function() -> (prompt, metadata)``.
        sd_pipeline: a diffusers ``StableDiffusionPipeline`` or ``StableDiffusionXLPipeline`` whose
            scheduler is a ``DDIMScheduler`` (``pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)``).
            Trained in place.
        image_samples_hook: optional ``hook(prompt_image_data, global_step, tracker)``, TRL's
            signature; ``prompt_image_data`` is a list of ``[images, prompts, metadata, rewards,
            reward_info]`` per sampling batch; ``tracker`` is the first accelerate tracker or None.

    After ``train()``, ``history`` holds one dict per epoch (reward mean/std, loss, KL, clip fraction).
    """

    method = "DDPO"
    config_class = DDPOConfig

    def __init__(self, config: DDPOConfig, reward_function: Callable[..., Any],
                 prompt_function: Callable[[], tuple[str, Any]], sd_pipeline, image_samples_hook=None):
        self.sd_pipeline = sd_pipeline
        super().__init__(config, reward_function, prompt_function, sd_pipeline, image_samples_hook)

    def _pipeline_family(self, pipeline, config):
        family = pipeline_family(pipeline, config.resolution)
        _check_scheduler(pipeline.scheduler)
        return family

    @property
    def unet(self):
        """The (accelerate-prepared) UNet being trained."""
        return self.model

    def _init_method(self):
        cfg = self.config
        self.negative_condition = self.family.encode_negative(cfg.negative_prompts)
        self.stat_tracker = (
            PerPromptStatTracker(cfg.per_prompt_stat_tracking_buffer_size, cfg.per_prompt_stat_tracking_min_count)
            if cfg.per_prompt_stat_tracking
            else None
        )

    def _state(self) -> dict:
        return {"stat_tracker": self.stat_tracker.state_dict() if self.stat_tracker else None}

    def _load_state(self, state: dict):
        if self.stat_tracker is not None and state.get("stat_tracker"):
            self.stat_tracker.load_state_dict(state["stat_tracker"])

    # ------------------------------------------------------------------ sampling and advantages
    def _sample_batch(self, epoch, index, prompts, condition):
        out = sample_with_logprob(
            self.family,
            condition,
            self.negative_condition if self.config.train_cfg else None,
            unet=self.accelerator.unwrap_model(self.model),
            num_inference_steps=self.config.sample_num_steps,
            guidance_scale=self.config.sample_guidance_scale,
            eta=self.config.sample_eta,
            autocast=self.accelerator.autocast,
        )
        latents = out["latents"]
        trajectory = {
            **condition,
            "timesteps": out["timesteps"],
            "latents": latents[:, :-1],
            "next_latents": latents[:, 1:],
            "log_probs": out["log_probs"],
        }
        return trajectory, out["images"]

    def _advantages(self, prompts, rewards):
        if self.stat_tracker is not None:
            return self.stat_tracker.update(prompts, rewards)
        return normalize_rewards(rewards)

    def _timestep_order(self, total, num_steps, device):
        # an independent random order of timesteps per trajectory; the first num_train_timesteps of it are
        # trained on
        return torch.stack([torch.randperm(num_steps, device=device) for _ in range(total)])

    # ------------------------------------------------------------------ training
    def _training_condition(self, batch):
        condition = {k: batch[k] for k in self.negative_condition}
        return self.training_condition(condition)

    def training_condition(self, condition: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A stored prompt condition as `calculate_loss` takes it: paired with the negative condition (once
        per training batch) when ``train_cfg``."""
        return self.family.with_negative(condition, self.negative_condition) if self.config.train_cfg else condition

    def _step_loss(self, batch, j, condition):
        loss, approx_kl, clipfrac = self.calculate_loss(
            batch["latents"][:, j], batch["timesteps"][:, j], batch["next_latents"][:, j], batch["log_probs"][:, j],
            batch["advantages"], condition,
        )
        return {"loss": loss, "approx_kl": approx_kl, "clipfrac": clipfrac}

    def calculate_loss(self, latents, timesteps, next_latents, log_probs, advantages, condition):
        """PPO-clipped DDPO loss of one timestep for a batch; returns ``(loss, approx_kl, clipfrac)``.
        ``condition``: the batch's stored prompt condition as `training_condition` gives it.

        ``approx_kl`` = 0.5 * mean((log p_theta - log p_old)^2), the estimate TRL and ddpo-pytorch log.
        """
        cfg = self.config
        with self.accelerator.autocast():
            noise_pred = self.family.predict(
                self.model, latents, timesteps, condition, cfg.sample_guidance_scale if cfg.train_cfg else None
            )
        _, log_prob = ddim_step_with_logprob(
            self.sd_pipeline.scheduler, noise_pred, timesteps, latents, eta=cfg.sample_eta, prev_sample=next_latents
        )
        return clipped_policy_loss(log_prob, log_probs, advantages, cfg.train_clip_range, cfg.train_adv_clip_max)


def _check_scheduler(scheduler):
    from diffusers import DDIMScheduler

    if not isinstance(scheduler, DDIMScheduler):
        raise TypeError(
            f"DDPO samples with DDIM but the pipeline's scheduler is {type(scheduler).__name__}; "
            "set pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config) first"
        )
    if scheduler.config.set_alpha_to_one:
        # The last step then has variance 0: no log-probability (NaN loss), whatever eta is.
        raise ValueError(
            "the DDIMScheduler has set_alpha_to_one=True, which makes the last DDIM step deterministic (no "
            "log-probability for DDPO); use DDIMScheduler.from_config(pipe.scheduler.config, "
            "set_alpha_to_one=False) (Stable Diffusion's own scheduler configs have it False)"
        )
