# Copyright 2026 The synartifact-hf contributors. Licensed under the Apache License, Version 2.0.
"""Fine-tune SD3 / SD3.5 or FLUX.1 with Flow-GRPO against the SynArtifact artifact reward (the paper's second half,
Sec. 3.4, brought to rectified-flow models; Flow-GRPO: Liu et al. 2025, arXiv 2505.05470).

The pipeline class (``StableDiffusion3Pipeline`` or ``FluxPipeline``) comes from the checkpoint's
``model_index.json``; the reward is ``ArtifactReward`` (Eq. 4 from a fine-tuned artifact classifier,
``examples/train_classifier.py``), the prompts the paper's ImageNet-animal list. The run writes to
``--output_dir``: ``pytorch_lora_weights.safetensors`` (``pipe.load_lora_weights(output_dir)``; with
``--use_lora false`` the whole pipeline), ``reward_curve.png`` (mean reward per epoch, +-1 std),
``before_after.png`` (fixed prompts and seeds before / after, with rewards), ``history.json``; checkpoints
and tensorboard logs under ``logs/<run_name>/``.

# SD3.5 Medium, the reference's SD3.5 settings (512 px, 10 steps, group 24, noise 0.7, KL 0.01, LoRA r32)
python examples/train_flow_grpo.py --config examples/recipes/flow_grpo_sd35m_lora.yaml \
    --classifier llava-1.5-7b-synartifact-stage1-llm-frozen

# FLUX.1-dev (512 px, 6 steps, group 24, noise 0.9, bf16, gradient checkpointing, text encoders off the GPU)
python examples/train_flow_grpo.py --config examples/recipes/flow_grpo_flux_lora.yaml \
    --classifier llava-1.5-7b-synartifact-stage1-llm-frozen

# Flow-GRPO-Fast: SDE (and training) on a 2-step window placed at random in the first half of the steps
python examples/train_flow_grpo.py --config examples/recipes/flow_grpo_sd35m_lora.yaml \
    --sde_window_size 2 --sde_window_range 0,5

# Coefficients-Preserving Sampling, no CFG, as the reference's *_fast_nocfg configs
python examples/train_flow_grpo.py --config examples/recipes/flow_grpo_sd35m_lora.yaml \
    --sde_type cps --noise_level 0.8 --sde_window_size 3 --sde_window_range 0,5 --train_cfg false \
    --guidance_scale 1.0 --clip_range 1e-5 --beta 0

# Several GPUs: each samples its own groups; rewards are gathered before the group normalisation
accelerate launch --num_processes 8 examples/train_flow_grpo.py --config examples/recipes/flow_grpo_sd35m_lora.yaml

# Resume (same LoRA, optimizer and RNG state; continues at the next epoch)
python examples/train_flow_grpo.py --config examples/recipes/flow_grpo_sd35m_lora.yaml --resume_from logs/sd35m-flow-grpo-artifact

Every ``FlowGRPOConfig`` field is an option (``python examples/train_flow_grpo.py --help``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser

from synartifact_hf.grpo import FlowGRPOConfig
from synartifact_hf.rl import scripts
from synartifact_hf.rl.scripts import RewardScriptArguments


@dataclass
class FlowGRPOScriptArguments(RewardScriptArguments):
    """Model, reward and figure options (the reward / figure ones are shared with examples/train_ddpo.py);
    the training knobs are FlowGRPOConfig's."""

    pretrained_model: str = field(
        default="stabilityai/stable-diffusion-3.5-medium",
        metadata={"help": "SD3 / SD3.5 or FLUX.1 pipeline (Hub id or folder) to fine-tune."},
    )
    pretrained_revision: str | None = field(default=None, metadata={"help": "Revision of pretrained_model."})
    drop_t5: bool = field(default=False, metadata={"help": "SD3 only: load without the T5 text encoder (text_encoder_3=None)."})
    output_dir: str = field(default="sd35m-synartifact-flow-grpo-lora", metadata={"help": "Where results go."})


def build_pipeline(args: FlowGRPOScriptArguments, config: FlowGRPOConfig, device: str):
    from synartifact_hf.grpo import flow_pipeline_class

    cls = flow_pipeline_class(args.pretrained_model, revision=args.pretrained_revision)
    extra = dict(text_encoder_3=None, tokenizer_3=None) if args.drop_t5 and cls.__name__ == "StableDiffusion3Pipeline" else {}
    pipe = cls.from_pretrained(args.pretrained_model, revision=args.pretrained_revision, use_safetensors=True, **extra)
    pipe.set_progress_bar_config(disable=True)
    # the transformer and VAE go to this process's device; the text encoders too unless offloaded
    for name, module in pipe.components.items():
        if hasattr(module, "to") and not (config.offload_text_encoders and name.startswith("text_encoder")):
            module.to(device)
    return pipe


def grid_images(pipe, args: FlowGRPOScriptArguments, config: FlowGRPOConfig, family):
    flux = type(pipe).__name__ == "FluxPipeline"
    guidance = config.guidance_scale if config.train_cfg else 1.0
    kwargs = dict(guidance_scale=config.embedded_guidance_scale, true_cfg_scale=guidance,
                  negative_prompt=config.negative_prompts if config.train_cfg else None) if flux else dict(guidance_scale=guidance)
    return scripts.sample_grid_images(pipe, args, num_inference_steps=config.sample_num_steps, height=family.height,
                              width=family.width, **kwargs)


def main(args: FlowGRPOScriptArguments, config: FlowGRPOConfig, reward=None, image_samples_hook=None) -> dict:
    """Train, save and report. ``reward`` defaults to the ArtifactReward on this process's device."""
    import contextlib

    from synartifact_hf.grpo import FlowGRPOTrainer, ImageNetAnimalPrompts, flow_pipeline_family

    state = scripts.process_state(config)
    pipe = build_pipeline(args, config, device=str(state.device))
    reward = scripts.build_reward(args, device=str(state.device)) if reward is None else reward
    prompts = ImageNetAnimalPrompts(template=args.prompt_template, seed=config.seed + state.process_index)
    family = flow_pipeline_family(pipe, config.resolution, config.embedded_guidance_scale)

    def grid():  # offloaded text encoders visit the device for the grid's prompts too
        with family.text_encoders_on(state.device) if config.offload_text_encoders else contextlib.nullcontext():
            return grid_images(pipe, args, config, family)

    if config.use_lora and config.mixed_precision in ("fp16", "bf16"):
        # "before" in the dtype the trainer gives the frozen weights: the grid compares weights, not precisions
        import torch

        pipe.to(dtype=torch.float16 if config.mixed_precision == "fp16" else torch.bfloat16)
    before = grid() if state.is_main_process else None
    trainer = FlowGRPOTrainer(config, reward, prompts, pipe, image_samples_hook=image_samples_hook)
    history, out = scripts.train_and_save(trainer, args.output_dir)
    if not state.is_main_process:
        return {"history": history}
    trainer.transformer.eval()
    grid_rewards = scripts.write_results(
        out, history, reward, args, before, grid(),
        title=f"Artifact reward during Flow-GRPO ({config.samples_per_epoch} images/epoch, group {config.num_images_per_prompt})",
    )
    return dict(history=history, grid_rewards=grid_rewards, output_dir=str(out))


def make_parser():
    """``--config recipe.yaml`` plus every FlowGRPOScriptArguments / FlowGRPOConfig field as an option."""
    return TrlParser((FlowGRPOScriptArguments, FlowGRPOConfig))


if __name__ == "__main__":
    main(*make_parser().parse_args_and_config())
