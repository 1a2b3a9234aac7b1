"""One timed DDPO epoch, as the GPU check's SD-1.5 row and bench_ddpo_sdxl.py (SDXL) measure it.

A warm-up epoch (kernels, allocator), then one timed epoch of our ``DDPOTrainer`` split at the
``image_samples_hook`` (called between sampling + reward and training) into sampling and training
seconds per image, and that epoch's peak GPU memory. The reward is a colour statistic, so the numbers
are the diffusion model's costs alone.
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
    """Warm-up epoch, then one timed epoch of ``config_fields["sample_batch_size"]`` images (one sampling
    batch). Returns ``s_per_image_sampling``, ``s_per_image_training``, ``s_per_image``,
    ``peak_memory_bytes`` (``torch.cuda.max_memory_allocated`` during the timed epoch; None off CUDA),
    ``resolution`` and ``num_train_timesteps``."""
    from synartifact_hf.ddpo import DDPOConfig, DDPOTrainer, PromptList

    images = config_fields["sample_batch_size"]
    marks: dict[str, float] = {}

    def after_sampling(prompt_image_data, step, tracker):
        sync(device)
        marks["sampled"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as logdir:
        config = DDPOConfig(logdir=logdir, num_epochs=2, sample_num_batches_per_epoch=1, use_lora=True, save_freq=0,
                            log_images=False, accelerator_kwargs={"cpu": not device.startswith("cuda")},
                            **config_fields)
        trainer = DDPOTrainer(config, ColourReward(), PromptList(prompts), pipe, image_samples_hook=after_sampling)
        trainer.step(0, 0)  # warm-up epoch
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        trainer.step(1, trainer.global_step)
        sync(device)
        end = time.perf_counter()
        result = {
            "s_per_image_sampling": (marks["sampled"] - start) / images,
            "s_per_image_training": (end - marks["sampled"]) / images,
            "s_per_image": (end - start) / images,
            "peak_memory_bytes": torch.cuda.max_memory_allocated() if device.startswith("cuda") else None,
            "resolution": trainer.family.height,
            "num_train_timesteps": trainer.num_train_timesteps,
        }
    del trainer
    return result
