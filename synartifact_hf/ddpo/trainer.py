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
the UNet's extra conditioning, VAE decoding) sits in ``families.py``.

Differences from TRL 0.23, each a fix: LoRA checkpoints resume into the SAME adapter the optimizer
updates (TRL loads a second adapter and then trains nothing); ``save_pretrained`` writes only
``pytorch_lora_weights.safetensors`` for LoRA (``load_lora_weights`` reads it) and a complete
pipeline for a full-UNet run; async rewards work; ``image_samples_hook`` gets ``None`` as tracker when
no tracker is configured instead of crashing; sampling and training use the same guidance setting,
so the importance ratio is exactly 1 before the first update.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import DDPOConfig
from .ddim import ddim_step_with_logprob, sample_with_logprob
from .families import pipeline_family
from .stat_tracking import PerPromptStatTracker, normalize_rewards

__all__ = ["DDPOTrainer", "LORA_WEIGHT_NAME"]

logger = logging.getLogger(__name__)

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
_STATE_NAME = "trainer_state.json"
_CHECKPOINT_PREFIX = "checkpoint_"


class DDPOTrainer:
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

    def __init__(
        self,
        config: DDPOConfig,
        reward_function: Callable[..., Any],
        prompt_function: Callable[[], tuple[str, Any]],
        sd_pipeline,
        image_samples_hook: Callable[..., Any] | None = None,
    ):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration, set_seed

        if not isinstance(config, DDPOConfig):
            raise TypeError(f"config must be a synartifact_hf.ddpo.DDPOConfig; got {type(config).__name__}")
        for name, fn in (("reward_function", reward_function), ("prompt_function", prompt_function)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable; got {type(fn).__name__}")
        self.family = pipeline_family(sd_pipeline, config.resolution)
        _check_scheduler(sd_pipeline.scheduler)
        self.config = config
        self.reward_fn = reward_function
        self.prompt_fn = prompt_function
        self.sd_pipeline = sd_pipeline
        self.image_samples_callback = image_samples_hook
        self.run_dir = Path(config.logdir) / config.run_name
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.num_train_timesteps = config.num_train_timesteps

        self.accelerator = Accelerator(
            log_with=config.log_with,
            mixed_precision=config.mixed_precision,
            project_config=ProjectConfiguration(project_dir=str(self.run_dir), logging_dir=str(self.run_dir)),
            # one backward pass per trained timestep: accumulate over all of them, so that
            # train_gradient_accumulation_steps counts training *batches* per optimizer step
            gradient_accumulation_steps=config.train_gradient_accumulation_steps * self.num_train_timesteps,
            **config.accelerator_kwargs,
        )
        self._check_batch_sizes()
        if config.log_with is not None:
            hparams = {k: v for k, v in config.to_dict().items() if isinstance(v, (int, float, str, bool))}
            self.accelerator.init_trackers(
                config.tracker_project_name, config=hparams, init_kwargs=config.tracker_kwargs
            )
        set_seed(config.seed, device_specific=True)
        if config.allow_tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True

        inference_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.accelerator.mixed_precision, torch.float32)
        self.family.freeze(self.accelerator.device, inference_dtype)
        unet = self._prepare_unet(sd_pipeline.unet, inference_dtype)
        self.trainable_parameters = [p for p in unet.parameters() if p.requires_grad]
        if not self.trainable_parameters:
            raise ValueError(f"no trainable UNet parameter; check lora_target_modules={config.lora_target_modules}")

        optimizer = torch.optim.AdamW(
            self.trainable_parameters,
            lr=config.train_learning_rate,
            betas=(config.train_adam_beta1, config.train_adam_beta2),
            weight_decay=config.train_adam_weight_decay,
            eps=config.train_adam_epsilon,
        )
        self.unet, self.optimizer = self.accelerator.prepare(unet, optimizer)
        self.accelerator.register_save_state_pre_hook(self._save_model_hook)
        self.accelerator.register_load_state_pre_hook(self._load_model_hook)

        self.negative_condition = self.family.encode_negative(config.negative_prompts)
        self.stat_tracker = (
            PerPromptStatTracker(config.per_prompt_stat_tracking_buffer_size, config.per_prompt_stat_tracking_min_count)
            if config.per_prompt_stat_tracking
            else None
        )
        self.executor = (
            futures.ThreadPoolExecutor(max_workers=config.max_workers) if config.async_reward_computation else None
        )
        self.history: list[dict[str, float]] = []
        self.first_epoch = 0
        self.global_step = 0
        if config.resume_from:
            self._resume(config.resume_from)

    def _prepare_unet(self, unet, inference_dtype: torch.dtype):
        config, device = self.config, self.accelerator.device
        if getattr(unet, "peft_config", None):
            raise ValueError(
                "sd_pipeline.unet already carries a LoRA adapter; DDPOTrainer adds its own. To continue a run, "
                "use config.resume_from; to start from merged weights, call pipe.fuse_lora() and "
                "pipe.unload_lora_weights() first"
            )
        if config.use_lora:
            from peft import LoraConfig

            unet.requires_grad_(False).to(device)
            if unet.dtype != inference_dtype:
                unet.to(dtype=inference_dtype)
            unet.add_adapter(
                LoraConfig(
                    r=config.lora_rank,
                    lora_alpha=config.lora_alpha,
                    init_lora_weights="gaussian",
                    target_modules=list(config.lora_target_modules),
                )
            )
            for param in unet.parameters():
                if param.requires_grad:  # LoRA weights train in fp32 whatever the frozen weights' dtype
                    param.data = param.data.float()
        else:
            unet.requires_grad_(True).to(device)
            if unet.dtype != torch.float32:  # the optimizer needs fp32 master weights
                unet.to(dtype=torch.float32)
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()  # active only with gradients on: sampling runs at full speed
        return unet

    # ------------------------------------------------------------------ public API
    def train(self, epochs: int | None = None) -> list[dict[str, float]]:
        """Train until epoch ``epochs`` (default ``config.num_epochs``; counted from 0, so a resumed run
        continues where it stopped). Returns ``history``."""
        epochs = self.config.num_epochs if epochs is None else epochs
        bar = tqdm(
            range(self.first_epoch, epochs),
            desc="DDPO epochs",
            disable=not self.accelerator.is_local_main_process,
        )
        for epoch in bar:
            self.global_step = self.step(epoch, self.global_step)
            bar.set_postfix(reward=f"{self.history[-1]['reward_mean']:.4f}")
            self.first_epoch = epoch + 1
            if self.config.save_freq and (epoch + 1) % self.config.save_freq == 0:
                self.save_checkpoint(epoch)
        self.accelerator.wait_for_everyone()
        return self.history

    def step(self, epoch: int, global_step: int) -> int:
        """One epoch: sample, reward, train. Returns the updated global (optimizer) step."""
        acc = self.accelerator
        samples, prompt_image_data = self._generate_samples(
            self.config.sample_num_batches_per_epoch, self.config.sample_batch_size
        )
        samples = {k: torch.cat([s[k] for s in samples]) for k in samples[0]}
        rewards, infos = self._collect_rewards(prompt_image_data)
        for data, reward, info in zip(prompt_image_data, rewards, infos):
            data.extend([reward, info])
        local_rewards = torch.cat(rewards)
        all_rewards = acc.gather(local_rewards).cpu().numpy().astype(np.float64)

        if self.stat_tracker is not None:
            prompt_ids = acc.gather(samples["prompt_ids"]).cpu().numpy()
            prompts = self.sd_pipeline.tokenizer.batch_decode(prompt_ids, skip_special_tokens=True)
            advantages = self.stat_tracker.update(prompts, all_rewards)
        else:
            advantages = normalize_rewards(all_rewards)
        samples["advantages"] = (
            torch.as_tensor(advantages, dtype=torch.float32)
            .reshape(acc.num_processes, -1)[acc.process_index]
            .to(acc.device)
        )
        del samples["prompt_ids"]

        record = {
            "epoch": epoch,
            "reward_mean": float(all_rewards.mean()),
            "reward_std": float(all_rewards.std()),
        }
        acc.log(dict(record), step=global_step)
        self._log_images(prompt_image_data, global_step)

        total, num_steps = samples["timesteps"].shape
        train_info = defaultdict(list)
        for inner_epoch in range(self.config.train_num_inner_epochs):
            perm = torch.randperm(total, device=acc.device)
            batch = {k: v[perm] for k, v in samples.items()}
            # an independent random order of timesteps per trajectory; the first
            # num_train_timesteps of it are trained on
            time_perm = torch.stack([torch.randperm(num_steps, device=acc.device) for _ in range(total)])
            rows = torch.arange(total, device=acc.device)[:, None]
            for key in ("timesteps", "latents", "next_latents", "log_probs"):
                batch[key] = batch[key][rows, time_perm]
            size = self.config.train_batch_size
            batches = [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, total, size)]
            self.unet.train()
            global_step = self._train_batches(batches, epoch, inner_epoch, global_step, train_info)
            if not acc.sync_gradients:
                raise RuntimeError("internal: an inner epoch ended between optimizer steps")
        record.update({k: float(np.mean(v)) for k, v in train_info.items()})
        record["global_step"] = global_step
        self.history.append(record)
        return global_step

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Save the trained weights: LoRA -> ``pytorch_lora_weights.safetensors`` (load it with the
        pipeline's ``load_lora_weights(save_directory)``); full UNet -> the whole pipeline (reload with
        its class's ``from_pretrained(save_directory)``). With mixed
        precision the frozen VAE and text encoder are saved in the dtype they were cast to."""
        save_directory = Path(save_directory)
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            save_directory.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=save_directory.parent, prefix=f".{save_directory.name}.") as tmp:
                if self.config.use_lora:
                    self._save_lora(tmp)
                else:
                    self.sd_pipeline.unet = self.accelerator.unwrap_model(self.unet)
                    self.sd_pipeline.save_pretrained(tmp, safe_serialization=True)
                _move_into(Path(tmp), save_directory)
        self.accelerator.wait_for_everyone()
        return save_directory

    def save_checkpoint(self, epoch: int) -> Path:
        """Save trainable weights, optimizer, RNG and trainer state to ``checkpoints/checkpoint_<epoch>``."""
        acc = self.accelerator
        final = self.checkpoint_dir / f"{_CHECKPOINT_PREFIX}{epoch}"
        tmp = self.checkpoint_dir / f".{_CHECKPOINT_PREFIX}{epoch}.partial"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()  # every process has written its RNG state before the folder is renamed
        if acc.is_main_process:
            state = {
                "epoch": epoch,
                "global_step": self.global_step,
                "history": self.history,
                "use_lora": self.config.use_lora,
                "stat_tracker": self.stat_tracker.state_dict() if self.stat_tracker else None,
                "config": self.config.to_dict(),
            }
            (tmp / _STATE_NAME).write_text(json.dumps(state, indent=1, default=str), encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            self._prune_checkpoints()
        acc.wait_for_everyone()
        return final

    # ------------------------------------------------------------------ sampling and rewards
    def _tokenize(self, prompts) -> torch.Tensor:
        tok = self.sd_pipeline.tokenizer
        return tok(
            list(prompts), padding="max_length", truncation=True, max_length=tok.model_max_length, return_tensors="pt"
        ).input_ids.to(self.accelerator.device)

    def _generate_samples(self, iterations: int, batch_size: int):
        samples, prompt_image_data = [], []
        self.unet.eval()
        unet = self.accelerator.unwrap_model(self.unet)
        negative = self.negative_condition if self.config.train_cfg else None
        show = self.accelerator.is_local_main_process
        for _ in tqdm(range(iterations), desc="sampling", leave=False, disable=not show):
            prompts, metadata = zip(*[self.prompt_fn() for _ in range(batch_size)])
            condition = self.family.encode(prompts)
            out = sample_with_logprob(
                self.family,
                condition,
                negative,
                unet=unet,
                num_inference_steps=self.config.sample_num_steps,
                guidance_scale=self.config.sample_guidance_scale,
                eta=self.config.sample_eta,
                autocast=self.accelerator.autocast,
            )
            latents = out["latents"]
            samples.append(
                {
                    "prompt_ids": self._tokenize(prompts),
                    **condition,
                    "timesteps": out["timesteps"],
                    "latents": latents[:, :-1],
                    "next_latents": latents[:, 1:],
                    "log_probs": out["log_probs"],
                }
            )
            images = out["images"]
            if self.executor is not None:  # score this batch while the next one samples
                pending = self.executor.submit(self.reward_fn, images, prompts, metadata)
                prompt_image_data.append([images, prompts, metadata, pending])
            else:
                prompt_image_data.append([images, prompts, metadata, self.reward_fn(images, prompts, metadata)])
        return samples, prompt_image_data

    def _collect_rewards(self, prompt_image_data):
        rewards, infos = [], []
        for data in prompt_image_data:
            result = data.pop()
            if isinstance(result, futures.Future):
                result = result.result()
            if not (isinstance(result, tuple) and len(result) == 2):
                raise TypeError(
                    "reward_function must return (rewards, info) — the DDPO contract; got "
                    f"{type(result).__name__}"
                )
            reward, info = result
            reward = torch.as_tensor(reward, dtype=torch.float32).reshape(-1).to(self.accelerator.device)
            if reward.numel() != len(data[1]):
                raise ValueError(f"reward_function returned {reward.numel()} rewards for {len(data[1])} images")
            if not torch.isfinite(reward).all():
                raise ValueError(f"reward_function returned non-finite rewards: {reward.tolist()}")
            rewards.append(reward)
            infos.append(info)
        return rewards, infos

    def _log_images(self, prompt_image_data, global_step: int):
        acc = self.accelerator
        tracker = acc.trackers[0] if acc.trackers else None
        if self.image_samples_callback is not None:
            self.image_samples_callback(prompt_image_data, global_step, tracker)
        if not (self.config.log_images and acc.is_main_process):
            return
        images, prompts, _, rewards, _ = prompt_image_data[0]
        array = (images.detach().float().cpu().permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        for tracker in acc.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"samples": array}, step=global_step, dataformats="NHWC")
                captions = "\n".join(f"{i}: {p} | reward {r:.4f}  " for i, (p, r) in enumerate(zip(prompts, rewards.tolist())))
                tracker.writer.add_text("sample_prompts", captions, global_step=global_step)
            elif hasattr(tracker, "log_images"):
                tracker.log_images({"samples": list(array)}, step=global_step)

    # ------------------------------------------------------------------ training
    def _train_batches(self, batches, epoch, inner_epoch, global_step, train_info):
        acc = self.accelerator
        info = defaultdict(list)
        for batch in batches:
            condition = {k: batch[k] for k in self.negative_condition}
            for j in range(self.num_train_timesteps):
                with acc.accumulate(self.unet):
                    loss, approx_kl, clipfrac = self.calculate_loss(
                        batch["latents"][:, j],
                        batch["timesteps"][:, j],
                        batch["next_latents"][:, j],
                        batch["log_probs"][:, j],
                        batch["advantages"],
                        condition,
                    )
                    info["loss"].append(loss.detach())
                    info["approx_kl"].append(approx_kl.detach())
                    info["clipfrac"].append(clipfrac.detach())
                    acc.backward(loss)
                    if acc.sync_gradients:
                        acc.clip_grad_norm_(self.trainable_parameters, self.config.train_max_grad_norm)
                    self.optimizer.step()
                    self.optimizer.zero_grad()
                if acc.sync_gradients:
                    logged = acc.reduce({k: torch.stack(v).mean() for k, v in info.items()}, reduction="mean")
                    logged = {k: float(v) for k, v in logged.items()}
                    for k, v in logged.items():
                        train_info[k].append(v)
                    acc.log(logged | {"epoch": epoch, "inner_epoch": inner_epoch}, step=global_step)
                    global_step += 1
                    info = defaultdict(list)
        return global_step

    def calculate_loss(self, latents, timesteps, next_latents, log_probs, advantages, condition):
        """PPO-clipped DDPO loss of one timestep for a batch; returns ``(loss, approx_kl, clipfrac)``.
        ``condition``: the batch's stored prompt condition (``family.encode``).

        ``approx_kl`` = 0.5 * mean((log p_theta - log p_old)^2), the estimate TRL and ddpo-pytorch log.
        """
        cfg = self.config
        with self.accelerator.autocast():
            noise_pred = self.family.noise_pred(
                self.unet, latents, timesteps, condition, self.negative_condition if cfg.train_cfg else None,
                cfg.sample_guidance_scale,
            )
        _, log_prob = ddim_step_with_logprob(
            self.sd_pipeline.scheduler, noise_pred, timesteps, latents, eta=cfg.sample_eta, prev_sample=next_latents
        )
        advantages = advantages.clamp(-cfg.train_adv_clip_max, cfg.train_adv_clip_max)
        ratio = torch.exp(log_prob - log_probs)
        unclipped = -advantages * ratio
        clipped = -advantages * ratio.clamp(1.0 - cfg.train_clip_range, 1.0 + cfg.train_clip_range)
        loss = torch.maximum(unclipped, clipped).mean()
        approx_kl = 0.5 * ((log_prob - log_probs) ** 2).mean()
        clipfrac = ((ratio - 1.0).abs() > cfg.train_clip_range).float().mean()
        return loss, approx_kl, clipfrac

    def _check_batch_sizes(self):
        cfg = self.config
        per_process = cfg.samples_per_epoch
        if per_process % cfg.train_batch_size:
            raise ValueError(
                f"sample_batch_size * sample_num_batches_per_epoch ({per_process}) must be divisible by "
                f"train_batch_size ({cfg.train_batch_size})"
            )
        if (per_process // cfg.train_batch_size) % cfg.train_gradient_accumulation_steps:
            raise ValueError(
                f"the {per_process // cfg.train_batch_size} training batches per epoch must be divisible by "
                f"train_gradient_accumulation_steps ({cfg.train_gradient_accumulation_steps}) so that every "
                "epoch ends on an optimizer step"
            )

    # ------------------------------------------------------------------ checkpoints
    def _lora_state_dict(self) -> dict[str, torch.Tensor]:
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict

        return convert_state_dict_to_diffusers(get_peft_model_state_dict(self.accelerator.unwrap_model(self.unet)))

    def _save_lora(self, folder):
        unet = self.accelerator.unwrap_model(self.unet)
        self.family.lora_loader.save_lora_weights(
            save_directory=folder,
            unet_lora_layers=self._lora_state_dict(),
            safe_serialization=True,
            weight_name=LORA_WEIGHT_NAME,
            unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),
        )

    def _save_model_hook(self, models, weights, output_dir):
        # accelerate would save the whole UNet (base weights included) under a generic name; save just
        # the trainable part, in the format diffusers loads, and drop the default copy
        if self.accelerator.is_main_process:
            if self.config.use_lora:
                self._save_lora(output_dir)
            else:
                self.accelerator.unwrap_model(self.unet).save_pretrained(
                    os.path.join(output_dir, "unet"), safe_serialization=True
                )
        while weights:
            weights.pop()

    def _load_model_hook(self, models, input_dir):
        # load in place into the parameters the optimizer already holds, so training goes on with them
        from safetensors.torch import load_file

        unet = self.accelerator.unwrap_model(self.unet)
        if self.config.use_lora:
            from diffusers.utils import convert_unet_state_dict_to_peft
            from peft import set_peft_model_state_dict

            path = os.path.join(input_dir, LORA_WEIGHT_NAME)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{input_dir} has no {LORA_WEIGHT_NAME}: not a LoRA DDPO checkpoint")
            state, _ = self.family.lora_loader.lora_state_dict(input_dir, weight_name=LORA_WEIGHT_NAME)
            state = convert_unet_state_dict_to_peft({k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")})
            result = set_peft_model_state_dict(unet, state, adapter_name="default")
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise ValueError(f"LoRA checkpoint {path} does not match this UNet/LoRA config: {unexpected[:5]}")
        else:
            path = os.path.join(input_dir, "unet", "diffusion_pytorch_model.safetensors")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found: not a full-UNet DDPO checkpoint")
            unet.load_state_dict(load_file(path, device=str(self.accelerator.device)), strict=True)
        while models:
            models.pop()

    def _resume(self, resume_from: str):
        path = _resolve_checkpoint(Path(resume_from).expanduser())
        state = json.loads((path / _STATE_NAME).read_text(encoding="utf-8"))
        if bool(state.get("use_lora")) != self.config.use_lora:
            raise ValueError(
                f"checkpoint {path} was trained with use_lora={state.get('use_lora')}, but config.use_lora="
                f"{self.config.use_lora}"
            )
        logger.info("resuming from %s", path)
        self.accelerator.load_state(str(path))
        self.first_epoch = int(state["epoch"]) + 1
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history", []))
        if self.stat_tracker is not None and state.get("stat_tracker"):
            self.stat_tracker.load_state_dict(state["stat_tracker"])

    def _prune_checkpoints(self):
        limit = self.config.num_checkpoint_limit
        if not limit:
            return
        found = sorted(_list_checkpoints(self.checkpoint_dir))
        for _, old in found[:-limit]:
            shutil.rmtree(old, ignore_errors=True)


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


def _list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    out = []
    if folder.is_dir():
        for child in folder.iterdir():
            suffix = child.name[len(_CHECKPOINT_PREFIX):]
            if child.name.startswith(_CHECKPOINT_PREFIX) and suffix.isdigit() and (child / _STATE_NAME).is_file():
                out.append((int(suffix), child))
    return out


def _resolve_checkpoint(path: Path) -> Path:
    if (path / _STATE_NAME).is_file():
        return path
    found = _list_checkpoints(path) or _list_checkpoints(path / "checkpoints")
    if not found:
        raise FileNotFoundError(
            f"resume_from={str(path)!r}: no DDPO checkpoint there (expected a checkpoint_<epoch> folder with "
            f"{_STATE_NAME}, or a folder holding such folders)"
        )
    return max(found)[1]


def _move_into(src: Path, dst: Path):
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        target = dst / item.name
        if target.is_dir() and item.is_dir():
            _move_into(item, target)
        else:
            os.replace(item, target)
