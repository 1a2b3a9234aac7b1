"""`RLConfig`: the fields DDPO (`DDPOConfig`) and Flow-GRPO (`FlowGRPOConfig`) share — run and logging,
checkpoints, sampling and training batch geometry, the optimizer, rewards, the trainable weights — with
TRL's ``DDPOConfig`` names, and their checks. Each trainer's config adds what its method needs."""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["MIXED_PRECISION", "RLConfig"]

MIXED_PRECISION = ("no", "fp16", "bf16")


def _default_exp_name() -> str:
    return os.path.splitext(os.path.basename(sys.argv[0]))[0] or "rl"


@dataclass
class RLConfig:
    """Shared by `DDPOConfig` and `FlowGRPOConfig` (see them). Per-process sizes: each epoch a process samples
    ``sample_batch_size * sample_num_batches_per_epoch`` images and then trains on them in batches of
    ``train_batch_size``, stepping the optimizer every ``train_gradient_accumulation_steps`` batches (each
    batch contributes one backward pass per trained timestep). The samples of one epoch must fill whole
    optimizer steps."""

    method_name: ClassVar[str] = "rl"  # default run name; the tracker project is synartifact-<run name with ->

    # --- run / logging ---------------------------------------------------------------------------
    exp_name: str = field(default_factory=_default_exp_name, metadata={"help": "Experiment name (kept for TRL compatibility; logged only)."})
    run_name: str = field(
        default="",
        metadata={"help": "Run name; checkpoints and tensorboard logs go to logdir/run_name ('': the method's, "
                  "'ddpo' / 'flow_grpo')."},
    )
    seed: int = field(default=0, metadata={"help": "Random seed (per process: seed + process index)."})
    log_with: str | None = field(default=None, metadata={"help": "Accelerate tracker: 'tensorboard', 'wandb', ... or None for no tracking."})
    tracker_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "init_kwargs for accelerator.init_trackers."})
    accelerator_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "Extra keyword arguments for accelerate.Accelerator."})
    tracker_project_name: str = field(default="", metadata={"help": "Tracker project name ('': 'synartifact-ddpo' / 'synartifact-flow-grpo')."})
    logdir: str = field(default="logs", metadata={"help": "Top-level folder for checkpoints and logs."})
    log_images: bool = field(default=True, metadata={"help": "Log the first sample batch of each epoch as images to the trackers."})
    # --- schedule / checkpoints ------------------------------------------------------------------
    num_epochs: int = field(default=100, metadata={"help": "Number of epochs (sample, then train)."})
    save_freq: int = field(default=1, metadata={"help": "Save a checkpoint every this many epochs (0: never)."})
    num_checkpoint_limit: int = field(default=5, metadata={"help": "Keep at most this many checkpoints (oldest deleted first)."})
    mixed_precision: str = field(default="no", metadata={"help": "'no', 'fp16' or 'bf16' (frozen weights are cast to it; LoRA stays fp32)."})
    allow_tf32: bool = field(default=True, metadata={"help": "Allow TF32 matmuls on Ampere+ GPUs."})
    resume_from: str = field(default="", metadata={"help": "Checkpoint folder (checkpoint_N) or a folder holding checkpoints (latest is used)."})
    # --- sampling --------------------------------------------------------------------------------
    sample_num_steps: int = field(default=50, metadata={"help": "Denoising steps per image."})
    sample_batch_size: int = field(default=1, metadata={"help": "Images per sampling batch (per process)."})
    sample_num_batches_per_epoch: int = field(default=2, metadata={"help": "Sampling batches per epoch (per process)."})
    resolution: int | None = field(default=None, metadata={"help": "Image side in pixels for sampling and training (None: the pipeline's own, e.g. 1024 for SDXL)."})
    # --- training --------------------------------------------------------------------------------
    train_batch_size: int = field(default=1, metadata={"help": "Training batch size (per process)."})
    train_learning_rate: float = field(default=3e-4, metadata={"help": "AdamW learning rate."})
    train_adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    train_adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    train_adam_weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    train_adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    train_gradient_accumulation_steps: int = field(default=1, metadata={"help": "Training batches per optimizer step."})
    train_max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    train_num_inner_epochs: int = field(default=1, metadata={"help": "Passes over each epoch's samples."})
    train_cfg: bool = field(default=True, metadata={"help": "Use classifier-free guidance when sampling AND training; False: conditional prediction only in both."})
    async_reward_computation: bool = field(default=False, metadata={"help": "Compute rewards in a thread pool while the next batch samples."})
    max_workers: int = field(default=2, metadata={"help": "Threads for async_reward_computation."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute the denoiser's activations in the backward pass (less memory, slower)."})
    # --- trainable weights -----------------------------------------------------------------------
    use_lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter (True) or the whole denoiser."})
    lora_rank: int = field(default=4, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=4.0, metadata={"help": "LoRA alpha (scale = alpha / rank)."})

    def _bad(self, name, expected):
        raise ValueError(f"{type(self).__name__}.{name} must be {expected}; got {getattr(self, name)!r}")

    def _check_ints(self, positive: tuple[str, ...], non_negative: tuple[str, ...] = ()):
        for names, low, expected in ((positive, 1, "a positive integer"), (non_negative, 0, "an integer >= 0")):
            for name in names:
                value = getattr(self, name)
                if not isinstance(value, int) or isinstance(value, bool) or value < low:
                    self._bad(name, expected)

    def __post_init__(self):
        self.run_name = self.run_name or self.method_name
        self.tracker_project_name = self.tracker_project_name or f"synartifact-{self.method_name.replace('_', '-')}"
        self._check_ints(
            ("sample_num_steps", "sample_batch_size", "sample_num_batches_per_epoch", "train_batch_size",
             "train_gradient_accumulation_steps", "train_num_inner_epochs", "num_epochs", "max_workers", "lora_rank"),
            ("save_freq", "num_checkpoint_limit"),
        )
        if self.resolution is not None and (
            not isinstance(self.resolution, int) or isinstance(self.resolution, bool) or self.resolution < 1
        ):
            self._bad("resolution", "None or a positive integer")
        if self.train_learning_rate < 0:
            self._bad("train_learning_rate", ">= 0")
        if self.mixed_precision not in MIXED_PRECISION:
            self._bad("mixed_precision", f"one of {MIXED_PRECISION}")
        if not self.run_name or os.sep in self.run_name or self.run_name in (".", ".."):
            self._bad("run_name", "a non-empty folder name")
        if isinstance(getattr(self, "lora_target_modules", None), str):
            self.lora_target_modules = [m.strip() for m in self.lora_target_modules.split(",") if m.strip()]

    @property
    def samples_per_epoch(self) -> int:
        """Images sampled per epoch, per process."""
        return self.sample_batch_size * self.sample_num_batches_per_epoch

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able dict (tracker hyper-parameters, checkpoint metadata)."""
        return dataclasses.asdict(self)
