"""`DDPOConfig`: every knob of `DDPOTrainer`, with TRL's `DDPOConfig` field names for what they share.

A config written for TRL 0.23 (``trl.DDPOConfig(...)``) works here field for field, except
``train_use_8bit_adam`` and ``push_to_hub`` (not offered). Added here: ``use_lora`` / ``lora_*``
(TRL put them on its pipeline wrapper), ``log_images``, ``resolution`` and ``gradient_checkpointing``. Defaults follow TRL, except
``mixed_precision`` (``"no"``, because fp16 needs a GPU) and ``run_name`` (``"ddpo"``, because
checkpoints live under ``logdir/run_name``).

>>> DDPOConfig(sample_batch_size=8, sample_num_batches_per_epoch=3, train_batch_size=4).samples_per_epoch
24
>>> DDPOConfig(sample_eta=0.0)
Traceback (most recent call last):
...
ValueError: DDPOConfig.sample_eta must be > 0: DDPO needs stochastic DDIM steps (eta=0 has no log-probability); got 0.0
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DDPOConfig"]

_MIXED_PRECISION = ("no", "fp16", "bf16")


def _default_exp_name() -> str:
    return os.path.splitext(os.path.basename(sys.argv[0]))[0] or "ddpo"


@dataclass
class DDPOConfig:
    """Configuration of `DDPOTrainer`; field names are TRL 0.23's ``DDPOConfig`` ones.

    Per-process sizes: each epoch a process samples ``sample_batch_size * sample_num_batches_per_epoch``
    images and then trains on them in batches of ``train_batch_size``, stepping the optimizer every
    ``train_gradient_accumulation_steps`` batches (each batch contributes one backward pass per trained
    timestep). The samples of one epoch must fill whole optimizer steps.
    """

    # --- run / logging ---------------------------------------------------------------------------
    exp_name: str = field(
        default_factory=_default_exp_name, metadata={"help": "Experiment name (kept for TRL compatibility; logged only)."}
    )
    run_name: str = field(
        default="ddpo", metadata={"help": "Run name; checkpoints and tensorboard logs go to logdir/run_name."}
    )
    seed: int = field(default=0, metadata={"help": "Random seed (per process: seed + process index)."})
    log_with: str | None = field(
        default=None,
        metadata={"help": "Accelerate tracker: 'tensorboard', 'wandb', ... or None for no tracking."},
    )
    tracker_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "init_kwargs for accelerator.init_trackers."}
    )
    accelerator_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Extra keyword arguments for accelerate.Accelerator."}
    )
    tracker_project_name: str = field(default="synartifact-ddpo", metadata={"help": "Tracker project name."})
    logdir: str = field(default="logs", metadata={"help": "Top-level folder for checkpoints and logs."})
    log_images: bool = field(
        default=True, metadata={"help": "Log the first sample batch of each epoch as images to the trackers."}
    )
    # --- schedule / checkpoints ------------------------------------------------------------------
    num_epochs: int = field(default=100, metadata={"help": "Number of epochs (sample, then train)."})
    save_freq: int = field(
        default=1, metadata={"help": "Save a checkpoint every this many epochs (0: never)."}
    )
    num_checkpoint_limit: int = field(
        default=5, metadata={"help": "Keep at most this many checkpoints (oldest deleted first)."}
    )
    mixed_precision: str = field(
        default="no", metadata={"help": "'no', 'fp16' or 'bf16' (frozen weights are cast to it; LoRA stays fp32)."}
    )
    allow_tf32: bool = field(default=True, metadata={"help": "Allow TF32 matmuls on Ampere+ GPUs."})
    resume_from: str = field(
        default="",
        metadata={"help": "Checkpoint folder (checkpoint_N) or a folder holding checkpoints (latest is used)."},
    )
    # --- sampling --------------------------------------------------------------------------------
    sample_num_steps: int = field(default=50, metadata={"help": "DDIM steps per image."})
    sample_eta: float = field(default=1.0, metadata={"help": "DDIM eta (> 0: DDPO needs stochastic steps)."})
    sample_guidance_scale: float = field(default=5.0, metadata={"help": "Classifier-free guidance weight."})
    sample_batch_size: int = field(default=1, metadata={"help": "Images per sampling batch (per process)."})
    sample_num_batches_per_epoch: int = field(
        default=2, metadata={"help": "Sampling batches per epoch (per process)."}
    )
    negative_prompts: str = field(
        default="",
        metadata={"help": "Negative prompt for guidance ('' = the pipeline's default: empty prompt; zeros for SDXL)."},
    )
    resolution: int | None = field(
        default=None,
        metadata={"help": "Image side in pixels for sampling and training (None: the pipeline's own, e.g. 1024 for SDXL)."},
    )
    # --- training --------------------------------------------------------------------------------
    train_batch_size: int = field(default=1, metadata={"help": "Training batch size (per process)."})
    train_learning_rate: float = field(default=3e-4, metadata={"help": "AdamW learning rate."})
    train_adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    train_adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    train_adam_weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    train_adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    train_gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Training batches per optimizer step."}
    )
    train_max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    train_num_inner_epochs: int = field(default=1, metadata={"help": "Passes over each epoch's samples."})
    train_cfg: bool = field(
        default=True,
        metadata={
            "help": "Use classifier-free guidance (sample_guidance_scale) when sampling AND training; "
            "False: conditional prediction only in both."
        },
    )
    train_adv_clip_max: float = field(default=5.0, metadata={"help": "Clip advantages to [-max, max]."})
    train_clip_range: float = field(default=1e-4, metadata={"help": "PPO clip range of the importance ratio."})
    train_timestep_fraction: float = field(
        default=1.0, metadata={"help": "Fraction of each trajectory's timesteps trained on (random subset)."}
    )
    per_prompt_stat_tracking: bool = field(
        default=False, metadata={"help": "Normalize rewards per prompt (running buffer) instead of per batch."}
    )
    per_prompt_stat_tracking_buffer_size: int = field(
        default=16, metadata={"help": "Rewards kept per prompt for its running mean/std."}
    )
    per_prompt_stat_tracking_min_count: int = field(
        default=16, metadata={"help": "Below this many buffered rewards a prompt uses the batch mean/std."}
    )
    async_reward_computation: bool = field(
        default=False, metadata={"help": "Compute rewards in a thread pool while the next batch samples."}
    )
    max_workers: int = field(default=2, metadata={"help": "Threads for async_reward_computation."})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute UNet activations in the backward pass (less memory, slower)."}
    )
    # --- trainable weights -----------------------------------------------------------------------
    use_lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter (True) or the full UNet."})
    lora_rank: int = field(default=4, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=4.0, metadata={"help": "LoRA alpha (scale = alpha / rank)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["to_k", "to_q", "to_v", "to_out.0"],
        metadata={"help": "UNet modules that get LoRA layers (TRL's choice: the attention projections)."},
    )

    def __post_init__(self):
        def bad(name, expected):
            raise ValueError(f"DDPOConfig.{name} must be {expected}; got {getattr(self, name)!r}")

        for name in (
            "sample_num_steps", "sample_batch_size", "sample_num_batches_per_epoch", "train_batch_size",
            "train_gradient_accumulation_steps", "train_num_inner_epochs", "num_epochs",
            "per_prompt_stat_tracking_buffer_size", "max_workers", "lora_rank",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(name, "a positive integer")
        for name in ("save_freq", "num_checkpoint_limit", "per_prompt_stat_tracking_min_count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                bad(name, "an integer >= 0")
        if self.resolution is not None and (
            not isinstance(self.resolution, int) or isinstance(self.resolution, bool) or self.resolution < 1
        ):
            bad("resolution", "None or a positive integer")
        if not self.sample_eta > 0:
            raise ValueError(
                "DDPOConfig.sample_eta must be > 0: DDPO needs stochastic DDIM steps (eta=0 has no "
                f"log-probability); got {self.sample_eta!r}"
            )
        if not 0 < self.train_timestep_fraction <= 1:
            bad("train_timestep_fraction", "in (0, 1]")
        if self.train_learning_rate < 0:
            bad("train_learning_rate", ">= 0")
        if not self.train_clip_range > 0:
            bad("train_clip_range", "> 0")
        if self.mixed_precision not in _MIXED_PRECISION:
            bad("mixed_precision", f"one of {_MIXED_PRECISION}")
        if not self.run_name or os.sep in self.run_name or self.run_name in (".", ".."):
            bad("run_name", "a non-empty folder name")
        if isinstance(self.lora_target_modules, str):
            self.lora_target_modules = [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]

    @property
    def num_train_timesteps(self) -> int:
        """Timesteps of each trajectory that are trained on."""
        return max(1, int(self.sample_num_steps * self.train_timestep_fraction))

    @property
    def samples_per_epoch(self) -> int:
        """Images sampled per epoch, per process."""
        return self.sample_batch_size * self.sample_num_batches_per_epoch

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able dict (tracker hyper-parameters, checkpoint metadata)."""
        return dataclasses.asdict(self)
