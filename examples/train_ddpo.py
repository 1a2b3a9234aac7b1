# Copyright 2026 The synartifact-hf contributors. Licensed under the Apache License, Version 2.0.
"""Fine-tune Stable Diffusion (1.x, 2.x, XL) with DDPO against the SynArtifact artifact reward (paper Sec. 3.4, 4.4).

The paper's setting: Stable Diffusion v1.5, LoRA, learning rate 3e-4, 24 images per epoch (here 8 per
sampling batch x 3 batches, one optimizer step over all 24), the ImageNet-animal prompts of ddpo-pytorch
(shipped in the package), and the reward of Eq. 4 computed from the answers of a fine-tuned artifact
classifier (``examples/train_classifier.py``). The run writes to ``--output_dir``:

- ``pytorch_lora_weights.safetensors``: the LoRA (``pipe.load_lora_weights(output_dir)``); with
  ``--use_lora false`` the whole pipeline instead (``<pipeline class>.from_pretrained``);
- ``reward_curve.png``: mean reward per epoch with a +-1 std band (paper Fig. 8);
- ``before_after.png``: fixed prompts and seeds before / after fine-tuning, with rewards (paper Fig. 6);
- ``README.md``: the model card (``hub_cards/ddpo_lora_card.md``); ``history.json``: per-epoch numbers;
- ``logs/<run_name>/``: checkpoints every ``--save_freq`` epochs and tensorboard logs
  (reward mean/std, KL estimate, clip fraction, sample images) with ``--log_with tensorboard``.

# The paper's recipe (one GPU with >= 24 GB: SD v1.5 in fp16 + the 7B classifier in bf16)
python examples/train_ddpo.py --config examples/recipes/ddpo_sd15_lora.yaml \
    --classifier llava-1.5-7b-synartifact-stage1-llm-frozen

# Stable Diffusion XL base (1024 px, LoRA, fp16 with the VAE upcast for decoding, gradient checkpointing).
# The pipeline class (StableDiffusionPipeline / StableDiffusionXLPipeline) comes from model_index.json.
python examples/train_ddpo.py --config examples/recipes/ddpo_sdxl_lora.yaml \
    --classifier llava-1.5-7b-synartifact-stage1-llm-frozen

# Several GPUs: each samples its own batches (24 images per GPU per epoch; see the recipe for the sizes)
accelerate launch --num_processes 4 examples/train_ddpo.py --config examples/recipes/ddpo_sd15_lora.yaml \
    --classifier llava-1.5-7b-synartifact-stage1-llm-frozen

# Resume a run (same LoRA, optimizer and RNG state; continues at the next epoch)
python examples/train_ddpo.py --config examples/recipes/ddpo_sd15_lora.yaml --resume_from logs/sd15-ddpo-artifact

# The likelihood reward (per-option scores, no BERTScore), rewards computed while the next batch samples
python examples/train_ddpo.py --config examples/recipes/ddpo_sd15_lora.yaml --reward_mode likelihood \
    --async_reward_computation true

# Watch it
tensorboard --logdir logs

Any recipe value can be overridden on the command line (``--train_learning_rate 1e-4``); every
``DDPOConfig`` field is an option (``python examples/train_ddpo.py --help``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trl import TrlParser

from synartifact_hf.ddpo import DDPOConfig
from synartifact_hf.paper import CITATION
from synartifact_hf.rl.scripts import (  # noqa: F401  (build_reward, process_state: used by tests and callers)
    RewardScriptArguments,
    build_reward,
    process_state,
    sample_grid_images,
    train_and_save,
    write_results,
)


@dataclass
class DDPOScriptArguments(RewardScriptArguments):
    """Model, reward and figure options (the reward / figure ones are shared with examples/train_flow_grpo.py:
    synartifact_hf.rl.scripts.RewardScriptArguments); the training knobs are DDPOConfig's."""

    pretrained_model: str = field(
        default="stable-diffusion-v1-5/stable-diffusion-v1-5",
        metadata={"help": "Stable Diffusion 1.x/2.x or SDXL pipeline (Hub id or folder) to fine-tune."},
    )
    pretrained_revision: str | None = field(default=None, metadata={"help": "Revision of pretrained_model."})
    output_dir: str = field(default="sd15-synartifact-ddpo-lora", metadata={"help": "Where results go."})


def build_pipeline(args: DDPOScriptArguments, device: str):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from synartifact_hf.ddpo import pipeline_class

    cls = pipeline_class(args.pretrained_model, revision=args.pretrained_revision)
    # SD 1.x's safety checker would black out images before the reward sees them; SDXL has none
    extra = dict(safety_checker=None, requires_safety_checker=False) if cls is StableDiffusionPipeline else {}
    pipe = cls.from_pretrained(args.pretrained_model, revision=args.pretrained_revision, use_safetensors=True, **extra)
    # DDPO's policy is the stochastic DDIM sampler (eta > 0); SD v1.5 ships PNDM, SDXL Euler
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    # this process's device (cuda:<local rank> under accelerate launch), not every process on cuda:0
    return pipe.to(device)


def grid_images(pipe, args: DDPOScriptArguments, config: DDPOConfig):
    return sample_grid_images(pipe, args, num_inference_steps=config.sample_num_steps,
                              guidance_scale=config.sample_guidance_scale, eta=config.sample_eta,
                              height=config.resolution, width=config.resolution)


def card_values(args: DDPOScriptArguments, config: DDPOConfig, history, reward, grid_rewards, pipe) -> dict:
    from diffusers import StableDiffusionXLPipeline
    from huggingface_hub import ModelCardData

    xl = isinstance(pipe, StableDiffusionXLPipeline)
    is_hub = not os.path.exists(args.pretrained_model)
    model_name = os.path.basename(os.path.normpath(args.output_dir))
    metadata = ModelCardData(
        base_model=args.pretrained_model if is_hub else None,
        library_name="diffusers",
        license="other",
        license_name="same-as-base-model",
        tags=["stable-diffusion", *(["stable-diffusion-xl"] if xl else []), "lora", "ddpo", "synartifact", "text-to-image"],
        pipeline_tag="text-to-image",
        model_name=model_name,
    ).to_yaml()
    means = [h["reward_mean"] for h in history]
    best = max(range(len(means)), key=means.__getitem__)
    classifier_is_hub = not os.path.exists(args.classifier)
    advantage = (
        f"per-prompt z-scores (buffer {config.per_prompt_stat_tracking_buffer_size}, min count "
        f"{config.per_prompt_stat_tracking_min_count})"
        if config.per_prompt_stat_tracking
        else "z-scores over each epoch's images"
    )
    return dict(
        citation=CITATION,
        metadata_yaml=metadata,
        model_name=model_name,
        pipeline_class="StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline",
        base_model=args.pretrained_model,
        base_model_url=f"https://huggingface.co/{args.pretrained_model}" if is_hub else args.pretrained_model,
        classifier=args.classifier,
        classifier_url=f"https://huggingface.co/{args.classifier}" if classifier_is_hub else args.classifier,
        repo_id=args.hub_model_id or model_name,
        example_prompt=args.prompt_template.format(args.eval_prompts[0]),
        sample_num_steps=config.sample_num_steps,
        guidance_scale=config.sample_guidance_scale,
        sample_eta=config.sample_eta,
        prompts_description="the 398 ImageNet animal classes of ddpo-pytorch, drawn uniformly"
        + ("" if args.prompt_template == "{}" else f", as `{args.prompt_template}`"),
        reward_description=repr(reward),
        num_epochs=len(history),
        images_per_epoch=config.samples_per_epoch,
        batch_description=f"{config.sample_batch_size} x {config.sample_num_batches_per_epoch} sampling batches per process; "
        f"train batch {config.train_batch_size} x {config.train_gradient_accumulation_steps} accumulation",
        learning_rate=config.train_learning_rate,
        clip_range=config.train_clip_range,
        adv_clip_max=config.train_adv_clip_max,
        lora_rank=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_targets=", ".join(f"`{m}`" for m in config.lora_target_modules),
        advantage_description=advantage,
        mixed_precision=config.mixed_precision,
        reward_first=f"{means[0]:.4f}",
        reward_last=f"{means[-1]:.4f}",
        reward_best=f"{means[best]:.4f}",
        best_epoch=history[best]["epoch"],
        reward_plot="reward_curve.png",
        grid_image="before_after.png",
        grid_reward_before=f"{sum(grid_rewards[0]) / len(grid_rewards[0]):.4f}",
        grid_reward_after=f"{sum(grid_rewards[1]) / len(grid_rewards[1]):.4f}",
    )


def main(args: DDPOScriptArguments, config: DDPOConfig, reward=None, image_samples_hook=None) -> dict:
    """Train, save and report. ``reward`` defaults to :func:`build_reward` on this process's device;
    ``image_samples_hook`` is DDPOTrainer's (called each epoch with the sampled images and rewards)."""
    import torch

    from synartifact_hf.cards import render_card
    from synartifact_hf.ddpo import DDPOTrainer, ImageNetAnimalPrompts

    state = process_state(config)
    pipe = build_pipeline(args, device=str(state.device))
    # each process its own classifier on its own device, scoring the images this process sampled
    reward = build_reward(args, device=str(state.device)) if reward is None else reward
    prompts = ImageNetAnimalPrompts(template=args.prompt_template, seed=config.seed + state.process_index)

    before = None
    if state.is_main_process:
        # sample "before" in the dtype the trainer will give the frozen weights, so that the grid
        # compares weights, not precisions
        if config.use_lora and config.mixed_precision in ("fp16", "bf16"):
            pipe.to(dtype=torch.float16 if config.mixed_precision == "fp16" else torch.bfloat16)
        before = grid_images(pipe, args, config)
    trainer = DDPOTrainer(config, reward, prompts, pipe, image_samples_hook=image_samples_hook)
    history, out = train_and_save(trainer, args.output_dir)
    if not state.is_main_process:
        return {"history": history}

    trainer.unet.eval()
    after = grid_images(pipe, args, config)
    grid_rewards = write_results(out, history, reward, args, before, after,
                                 title=f"Artifact reward during DDPO ({config.samples_per_epoch} images/epoch)")
    card = render_card("ddpo_lora_card", **card_values(args, config, history, reward, grid_rewards, pipe))
    tmp = out / "README.md.partial"
    tmp.write_text(card, encoding="utf-8")
    os.replace(tmp, out / "README.md")
    return {"history": history, "grid_rewards": grid_rewards, "output_dir": str(out)}


def make_parser():
    return TrlParser((DDPOScriptArguments, DDPOConfig))


if __name__ == "__main__":
    script_args, ddpo_config = make_parser().parse_args_and_config()
    main(script_args, ddpo_config)
