"""Step 6 of the demo: a few DDPO epochs of a tiny Stable Diffusion, rewarded by the fine-tuned classifier.

The pieces are the package's public DDPO API, as ``examples/train_ddpo.py`` wires them: a
``StableDiffusionPipeline`` with a DDIM scheduler (here :func:`~synartifact_hf.tiny_diffusion.build_tiny_sd_pipeline`,
32x32 images, random weights), :class:`~synartifact_hf.reward.ArtifactReward` (Eq. 4) around the
classifier, the ImageNet-animal prompts, ``DDPOConfig`` and ``DDPOTrainer`` (LoRA on the UNet's attention).
Each epoch samples images, asks the classifier about each, turns the answers into rewards, and takes a
clipped policy-gradient step; the reward curve (paper Fig. 8) shows the mean reward per epoch.

The settings (:data:`TINY_DDPO`) are sized for seconds per epoch on two CPU cores, not for image quality:
with random UNet weights the images are noise, and a few epochs show the loop working, not better images.

Which form of the reward: Eq. 4 (``reward_mode="bertscore"``) scores the classifier's greedy *answer*. The
demo's toy classifier gives the same answer to every noise image of the random UNet, so Eq. 4 is the same
for all of them, every advantage is zero and DDPO has nothing to follow (the curve is a flat line). The
demo therefore defaults to the reward's ``likelihood`` form for the toy: the same classifier's
probabilities of the 14 options (r = P(No artifacts) - alpha * sum_k P(artifact k) + beta), which differ
from image to image. A real classifier answers differently per image; with ``--model`` Eq. 4 is the default.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text_atomic

__all__ = ["DDPORun", "TINY_DDPO", "run_ddpo"]

# DDPOConfig fields of the demo run: 8 images per epoch, 8 DDIM steps each, two optimizer steps per epoch
# (the second one sees a policy that already moved, so the logged KL and clip fraction are not all zero).
TINY_DDPO = {
    "sample_num_steps": 8,
    "sample_batch_size": 4,
    "sample_num_batches_per_epoch": 2,
    "train_batch_size": 4,
    "train_gradient_accumulation_steps": 1,
    "train_learning_rate": 3e-3,
    "mixed_precision": "no",
    "save_freq": 0,
    "log_images": False,
    "run_name": "ddpo",
}


@dataclass
class DDPORun:
    """What :func:`run_ddpo` wrote: per-epoch history, the reward curve, the LoRA folder."""

    reward_mode: str = "bertscore"
    history: list[dict] = field(default_factory=list)
    reward_curve: Path | None = None
    history_file: Path | None = None
    lora_dir: Path | None = None


def run_ddpo(classifier: str | os.PathLike, output_dir: str | os.PathLike, *, epochs: int,
             reward_mode: str = "bertscore", seed: int = 0, max_new_tokens: int = 48, scorer=None,
             pretrained_model: str | os.PathLike | None = None) -> DDPORun:
    """Train ``epochs`` DDPO epochs with the reward of ``classifier``; write everything under ``output_dir``.

    ``pretrained_model``: a Stable Diffusion folder or Hub id with a DDIM-compatible scheduler; default a
    tiny random one built in ``output_dir/tiny-random-sd``. ``scorer``: a ready ``BERTScoreMatrix`` to reuse.
    """
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from ..ddpo import DDPOConfig, DDPOTrainer, ImageNetAnimalPrompts
    from ..drawing import plot_reward_curve
    from ..reward import ArtifactReward

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if pretrained_model is None:
        from ..tiny_diffusion import build_tiny_sd_pipeline

        pretrained_model = build_tiny_sd_pipeline(out / "tiny-random-sd", seed=seed)
        from diffusers.utils import logging as diffusers_logging

        # The tiny CLIP holds 32 tokens: every longer prompt (and its padded negative) logs a truncation line.
        diffusers_logging.set_verbosity_error()
    pipe = StableDiffusionPipeline.from_pretrained(
        os.fspath(pretrained_model), safety_checker=None, requires_safety_checker=False, use_safetensors=True,
    )
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(torch.device("cuda" if torch.cuda.is_available() else "cpu"))

    reward = ArtifactReward(os.fspath(classifier), mode=reward_mode, scorer=scorer,
                            batch_size=TINY_DDPO["sample_batch_size"],
                            classifier_kwargs={} if reward_mode == "likelihood" else {"max_new_tokens": max_new_tokens})
    config = DDPOConfig(num_epochs=epochs, seed=seed, logdir=os.fspath(out / "logs"), **TINY_DDPO)
    trainer = DDPOTrainer(config, reward, ImageNetAnimalPrompts(seed=seed), pipe)
    history = trainer.train()
    lora_dir = trainer.save_pretrained(out / "lora")
    trainer.accelerator.end_training()

    curve = plot_reward_curve(
        history, out / "reward_curve.png",
        title=f"Artifact reward ({reward_mode}) during DDPO (tiny SD, {config.samples_per_epoch} images/epoch)",
    )
    history_file = write_text_atomic(out / "history.json", json.dumps(history, indent=1))
    return DDPORun(reward_mode=reward_mode, history=history, reward_curve=curve, history_file=history_file, lora_dir=lora_dir)
