"""`DDPOConfig`: every knob of `DDPOTrainer`, with TRL's `DDPOConfig` field names for what they share.

A config written for TRL 0.23 (``trl.DDPOConfig(...)``) works here field for field, except
``train_use_8bit_adam`` and ``push_to_hub`` (not offered). Added here: ``use_lora`` / ``lora_*``
(TRL put them on its pipeline wrapper), ``log_images``, ``resolution`` and ``gradient_checkpointing``. Defaults follow TRL, except
``mixed_precision`` (``"no"``, because fp16 needs a GPU) and ``run_name`` (``"ddpo"``, because
checkpoints live under ``logdir/run_name``). The fields shared with Flow-GRPO live in
`synartifact_hf.rl.config.RLConfig`.

>>> DDPOConfig(sample_batch_size=8, sample_num_batches_per_epoch=3, train_batch_size=4).samples_per_epoch
24
>>> DDPOConfig(sample_eta=0.0)
Traceback (most recent call last):
...
ValueError: DDPOConfig.sample_eta must be > 0: DDPO needs stochastic DDIM steps (eta=0 has no log-probability); got 0.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..rl.config import RLConfig

__all__ = ["DDPOConfig"]


@dataclass
class DDPOConfig(RLConfig):
    """Configuration of `DDPOTrainer`; field names are TRL 0.23's ``DDPOConfig`` ones (the shared ones are
    documented on `RLConfig`)."""

    method_name: ClassVar[str] = "ddpo"

    # --- sampling --------------------------------------------------------------------------------
    sample_eta: float = field(default=1.0, metadata={"help": "DDIM eta (> 0: DDPO needs stochastic steps)."})
    sample_guidance_scale: float = field(default=5.0, metadata={"help": "Classifier-free guidance weight."})
    negative_prompts: str = field(
        default="",
        metadata={"help": "Negative prompt for guidance ('' = the pipeline's default: empty prompt; zeros for SDXL)."},
    )
    # --- training --------------------------------------------------------------------------------
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
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["to_k", "to_q", "to_v", "to_out.0"],
        metadata={"help": "UNet modules that get LoRA layers (TRL's choice: the attention projections)."},
    )

    def __post_init__(self):
        super().__post_init__()
        self._check_ints(("per_prompt_stat_tracking_buffer_size",), ("per_prompt_stat_tracking_min_count",))
        if not self.sample_eta > 0:
            raise ValueError(
                "DDPOConfig.sample_eta must be > 0: DDPO needs stochastic DDIM steps (eta=0 has no "
                f"log-probability); got {self.sample_eta!r}"
            )
        if not 0 < self.train_timestep_fraction <= 1:
            self._bad("train_timestep_fraction", "in (0, 1]")
        if not self.train_clip_range > 0:
            self._bad("train_clip_range", "> 0")

    @property
    def num_train_timesteps(self) -> int:
        """Timesteps of each trajectory that are trained on."""
        return max(1, int(self.sample_num_steps * self.train_timestep_fraction))
