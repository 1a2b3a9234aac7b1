"""The RL core shared by DDPO (`synartifact_hf.ddpo`, UNet + DDIM) and Flow-GRPO (`synartifact_hf.grpo`,
rectified-flow transformers): they differ only in the step kernel and the objective's extras.

- ``config.py``: `RLConfig`, the fields both configs share (TRL's DDPO names) and their checks.
- ``trainer.py``: `RLTrainer`, accelerate set-up, LoRA / full training of the denoiser, the epoch loop,
  gradient accumulation per trained step, saving in diffusers' LoRA format, checkpoints and resume, logging.
- ``rewards.py``: `RewardCollector` (sync or thread-pool rewards, the reward contract's checks) and
  `SampledBatch` (one sampling batch; TRL's list shape only at ``image_samples_hook``).
- ``objective.py``: `clipped_policy_loss`, the PPO-clipped objective of both methods.
- ``stat_tracking.py``: `PerPromptStatTracker`, `normalize_rewards`, `group_advantages` (GRPO).
- ``families.py``: the pipeline-family seam (SD 1.x/2.x, SDXL, SD3/SD3.5, FLUX.1).
- ``prompt_functions.py``: picklable prompt functions (`PromptList`, `ImageNetAnimalPrompts`); not the
  classifier's instructions, which are ``synartifact_hf.prompts``.

Importing this package is light: nothing here is imported until asked for.
"""
