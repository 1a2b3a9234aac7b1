"""One timed RL epoch (DDPO or Flow-GRPO), as the GPU check's DDPO / Flow-GRPO rows, bench_ddpo_sdxl.py and
bench_flow_grpo.py measure it.

A warm-up epoch (kernels, allocator), then one timed epoch of the trainer split at the
``image_samples_hook`` (called between sampling + reward and training) into sampling and training
seconds per image, and that epoch's peak GPU memory. The reward is a colour statistic, so the numbers
are the diffusion model's costs alone. `time_ddpo_epoch` builds a ``DDPOTrainer``; `timed_epoch` times any
trainer of the RL core.
"""

from __future__ import annotations

import tempfile
import time

import torch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class ColourReward:
    """mean(green) - mean(red): a reward that costs nothing next to the diffusion model (random weights:
    a non-finite pixel must not stop a run that measures cost, not quality)."""

    def __call__(self, images, prompts, metadata):
        return (images[:, 1] - images[:, 0]).float().nan_to_num().mean((1, 2)).cpu(), {}


def time_ddpo_epoch(pipe, device: str, prompts: list[str], **config_fields) -> dict:
    """`time_rl_epoch` of a ``DDPOTrainer`` (LoRA) on ``pipe``."""
    return time_rl_epoch("ddpo", pipe, device, prompts, **config_fields)


def time_rl_epoch(method: str, pipe, device: str, prompts: list[str], **config_fields) -> dict:
    """`timed_epoch` of a ``DDPOTrainer`` (``method="ddpo"``) or ``FlowGRPOTrainer`` (``"flow_grpo"``) on ``pipe``,
    LoRA (unless ``use_lora`` says otherwise), one sampling batch of ``config_fields["sample_batch_size"]`` images."""
    if method == "ddpo":
        from synartifact_hf.ddpo import DDPOConfig as Config
        from synartifact_hf.ddpo import DDPOTrainer as Trainer
    else:
        from synartifact_hf.grpo import FlowGRPOConfig as Config
        from synartifact_hf.grpo import FlowGRPOTrainer as Trainer
    from synartifact_hf.rl.prompt_functions import PromptList

    config_fields = {"use_lora": True, **config_fields}
    with tempfile.TemporaryDirectory() as logdir:
        config = Config(logdir=logdir, num_epochs=2, sample_num_batches_per_epoch=1, save_freq=0, log_images=False,
                        accelerator_kwargs={"cpu": not device.startswith("cuda")}, **config_fields)
        trainer = Trainer(config, ColourReward(), PromptList(prompts), pipe)
        result = timed_epoch(trainer, device)
    del trainer
    return result


def timed_epoch(trainer, device: str) -> dict:
    """Warm-up epoch, then one timed epoch of ``trainer`` (one sampling batch of ``sample_batch_size`` images).
    Returns ``s_per_image_sampling``, ``s_per_image_training``, ``s_per_image``, ``peak_memory_bytes``
    (``torch.cuda.max_memory_allocated`` during the timed epoch; None off CUDA), ``resolution`` and
    ``num_train_timesteps``."""
    images = trainer.config.samples_per_epoch
    marks: dict[str, float] = {}

    def after_sampling(prompt_image_data, step, tracker):
        sync(device)
        marks["sampled"] = time.perf_counter()

    trainer.image_samples_callback = after_sampling
    trainer.step(0, 0)  # warm-up epoch
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    trainer.step(1, trainer.global_step)
    sync(device)
    end = time.perf_counter()
    return {
        "s_per_image_sampling": (marks["sampled"] - start) / images,
        "s_per_image_training": (end - marks["sampled"]) / images,
        "s_per_image": (end - start) / images,
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if device.startswith("cuda") else None,
        "resolution": trainer.family.height,
        "num_train_timesteps": trainer.num_train_timesteps,
    }
