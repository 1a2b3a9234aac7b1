"""`FlowGRPOConfig`: every knob of `FlowGRPOTrainer`. The fields DDPO also has keep TRL's ``DDPOConfig`` names
(`synartifact_hf.rl.config.RLConfig`); Flow-GRPO's own follow the reference implementation
(``yifan123/flow_grpo``, ``config/base.py``): ``num_images_per_prompt`` (the GRPO group), ``noise_level``,
``sde_type``, ``sde_window_size`` / ``sde_window_range`` (Flow-GRPO-Fast / MixGRPO), ``guidance_scale``,
``beta`` (KL weight), ``clip_range``, ``adv_clip_max``, ``same_latent``.

>>> FlowGRPOConfig(sample_num_steps=10, sde_window_size=2, sde_window_range=[0, 5]).num_train_timesteps
2
>>> FlowGRPOConfig(sample_num_steps=10).window_range  # no window: every step is an SDE step (plain Flow-GRPO)
(0, 10)
>>> FlowGRPOConfig(num_images_per_prompt=1, sample_batch_size=1)
Traceback (most recent call last):
...
ValueError: FlowGRPOConfig.num_images_per_prompt must be >= 2 (GRPO compares the images of one prompt with each other); got 1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..rl.config import RLConfig

__all__ = ["SDE_TYPES", "FlowGRPOConfig"]

SDE_TYPES = ("sde", "cps")


@dataclass
class FlowGRPOConfig(RLConfig):
    """Configuration of `FlowGRPOTrainer` (the shared fields are documented on `RLConfig`). Per process, each
    sampling batch holds ``sample_batch_size / num_images_per_prompt`` prompts, each sampled
    ``num_images_per_prompt`` times; advantages are z-scores within each prompt's images of the epoch,
    gathered over all processes."""

    method_name: ClassVar[str] = "flow_grpo"

    sample_num_steps: int = field(default=10, metadata={"help": "Denoising steps per image (the reference: 10 for SD3.5, 6 for FLUX)."})
    sample_batch_size: int = field(default=8, metadata={"help": "Images per sampling batch (per process); a multiple of num_images_per_prompt."})
    train_batch_size: int = field(default=8, metadata={"help": "Training batch size (per process)."})
    # --- GRPO sampling ---------------------------------------------------------------------------
    num_images_per_prompt: int = field(default=8, metadata={"help": "GRPO group size: images sampled per prompt (>= 2), compared with each other."})
    same_latent: bool = field(default=False, metadata={"help": "The images of a group start from the same initial noise (they differ by the SDE noise)."})
    noise_level: float = field(default=0.7, metadata={"help": "SDE noise level a (> 0): sigma_t = a * sqrt(sigma / (1 - sigma)); CPS: in (0, 1]."})
    sde_type: str = field(default="sde", metadata={"help": "'sde' (Flow-GRPO's marginal-preserving SDE) or 'cps' (Coefficients-Preserving Sampling)."})
    sde_window_size: int = field(
        default=0,
        metadata={"help": "SDE (and trained) steps per image, a window placed at random in sde_window_range for each "
                  "sampling batch; the other steps are plain Euler ODE steps (Flow-GRPO-Fast). 0: the whole range."},
    )
    sde_window_range: list[int] | None = field(default=None, metadata={"help": "[first, end) step indices the window may cover (None: [0, sample_num_steps])."})
    guidance_scale: float = field(default=4.5, metadata={"help": "Classifier-free guidance weight, used iff train_cfg (SD3: guidance_scale; FLUX: true_cfg_scale)."})
    embedded_guidance_scale: float = field(default=3.5, metadata={"help": "FLUX.1-dev's distilled guidance (the transformer's guidance embedding; FluxPipeline's guidance_scale)."})
    negative_prompts: str = field(default="", metadata={"help": "Negative prompt of classifier-free guidance."})
    offload_text_encoders: bool = field(default=False, metadata={"help": "Keep the text encoders on the CPU; they visit the accelerator once per epoch to encode its prompts."})
    # --- GRPO objective --------------------------------------------------------------------------
    beta: float = field(default=0.04, metadata={"help": "KL weight: beta * KL(policy || reference), the reference being the transformer with LoRA disabled."})
    clip_range: float = field(default=1e-4, metadata={"help": "PPO clip range of the importance ratio."})
    adv_clip_max: float = field(default=5.0, metadata={"help": "Clip advantages to [-max, max]."})
    # --- trainable weights (the reference's LoRA) ------------------------------------------------
    lora_rank: int = field(default=32, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=64.0, metadata={"help": "LoRA alpha (scale = alpha / rank)."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["attn.add_k_proj", "attn.add_q_proj", "attn.add_v_proj", "attn.to_add_out",
                                 "attn.to_k", "attn.to_out.0", "attn.to_q", "attn.to_v"],
        metadata={"help": "Transformer modules that get LoRA layers (the reference's: joint attention projections)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.num_images_per_prompt, int) or self.num_images_per_prompt < 2:
            raise ValueError(
                "FlowGRPOConfig.num_images_per_prompt must be >= 2 (GRPO compares the images of one prompt with each "
                f"other); got {self.num_images_per_prompt!r}"
            )
        if self.sample_batch_size % self.num_images_per_prompt:
            self._bad("sample_batch_size", f"a multiple of num_images_per_prompt ({self.num_images_per_prompt})")
        if self.sde_type not in SDE_TYPES:
            self._bad("sde_type", f"one of {SDE_TYPES}")
        if not self.noise_level > 0 or (self.sde_type == "cps" and self.noise_level > 1):
            allowed = "in (0, 1] for CPS" if self.sde_type == "cps" else "> 0 (0 is the deterministic ODE: no log-probability)"
            self._bad("noise_level", allowed)
        steps = self.sample_num_steps
        if self.sde_window_range is not None:
            if isinstance(self.sde_window_range, str):  # "0,5" from a command line
                self.sde_window_range = [int(v) for v in self.sde_window_range.split(",")]
            if len(self.sde_window_range) != 2:
                self._bad("sde_window_range", "None or two step indices [first, end)")
            self.sde_window_range = [int(v) for v in self.sde_window_range]
        lo, hi = self.window_range
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo < hi <= steps):
            self._bad("sde_window_range", f"[first, end) with 0 <= first < end <= sample_num_steps ({steps})")
        if self.sde_type == "cps" and hi == steps:
            self._bad("sde_window_range", f"[first, end) with end < sample_num_steps ({steps}) for CPS (its last step "
                      "has no noise)")
        if not isinstance(self.sde_window_size, int) or not 0 <= self.sde_window_size <= hi - lo:
            self._bad("sde_window_size", f"an integer in [0, {hi - lo}] (0: the whole window range [{lo}, {hi}))")
        if not self.clip_range > 0:
            self._bad("clip_range", "> 0")
        if self.beta < 0:
            self._bad("beta", ">= 0")
        if self.beta > 0 and not self.use_lora:
            raise ValueError(
                "FlowGRPOConfig.beta > 0 needs use_lora=True: the KL's reference policy is the transformer with its "
                "LoRA adapters disabled (no second copy of the model); set beta=0 for full fine-tuning"
            )

    @property
    def window_range(self) -> tuple[int, int]:
        """The [first, end) steps the SDE window may cover."""
        if self.sde_window_range is None:
            return (0, self.sample_num_steps)
        lo, hi = self.sde_window_range
        return (lo, hi)

    @property
    def num_train_timesteps(self) -> int:
        """SDE steps per image, all of them trained on."""
        lo, hi = self.window_range
        return self.sde_window_size or hi - lo
