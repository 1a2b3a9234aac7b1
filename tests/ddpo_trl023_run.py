"""Run inside the TRL 0.23 virtualenv (``make venv-trl023``): one epoch of TRL's own ``DDPOTrainer`` with
our ``ArtifactReward`` and ``ImageNetAnimalPrompts``, unchanged, on a tiny local SD pipeline.

Used by tests/test_ddpo_trl023.py through a subprocess; prints one JSON line with what it saw.
Imports live inside ``main`` so that pytest's doctest collection can import this file in the main
virtualenv (whose TRL no longer has ``DDPOTrainer``).

    .venv-trl023/bin/python tests/ddpo_trl023_run.py SD_PIPELINE_DIR LLAVA_DIR LOGDIR
"""

from __future__ import annotations

import json
import sys


def main(sd_path: str, llava_path: str, logdir: str) -> dict:
    import accelerate
    import torch
    import trl
    from trl import DDPOConfig, DDPOTrainer, DefaultDDPOStableDiffusionPipeline

    # TRL 0.23 known issue: the pipeline wrapper logs through accelerate, which needs its state first
    try:
        DefaultDDPOStableDiffusionPipeline(sd_path, use_lora=True)
        without_state = "ok"
    except RuntimeError as error:
        without_state = f"RuntimeError: {error}"
    accelerate.PartialState()

    from synartifact_hf.ddpo import ImageNetAnimalPrompts
    from synartifact_hf.reward import ArtifactReward

    torch.set_num_threads(1)
    pipeline = DefaultDDPOStableDiffusionPipeline(sd_path, use_lora=True)
    reward = ArtifactReward(llava_path, classifier_kwargs={"max_new_tokens": 8}, batch_size=2)
    prompts = ImageNetAnimalPrompts(seed=0)
    config = DDPOConfig(
        num_epochs=1,
        sample_num_steps=2,
        sample_batch_size=2,
        sample_num_batches_per_epoch=1,
        train_batch_size=2,
        train_learning_rate=1e-2,
        mixed_precision="no",
        # TRL 0.23 known issue: with log_with=None an image_samples_hook crashes (no tracker);
        # the hook is how we observe the rewards without touching the reward function
        log_with="tensorboard",
        project_kwargs={"logging_dir": logdir, "project_dir": logdir},
        logdir=logdir,
        save_freq=100,
        seed=0,
    )
    seen = []

    def hook(prompt_image_data, global_step, tracker):
        for images, batch_prompts, _, rewards, info in prompt_image_data:
            seen.append(
                {
                    "image_shape": list(images.shape),
                    "prompts": list(batch_prompts),
                    "rewards": [float(r) for r in rewards],
                    "answers": list(info["answers"]),
                }
            )

    trainer = DDPOTrainer(config, reward, prompts, pipeline, image_samples_hook=hook)
    lora = {n: p.detach().clone() for n, p in pipeline.unet.named_parameters() if p.requires_grad}
    trainer.train()
    changed = sum(not torch.equal(p.detach(), lora[n]) for n, p in pipeline.unet.named_parameters() if n in lora)
    return {
        "trl_version": trl.__version__,
        "batches": seen,
        "num_lora_tensors": len(lora),
        "num_lora_changed": changed,
        "known_issues": {"pipeline_before_accelerate_state": without_state, **known_issues(sd_path, logdir)},
    }


class _GreenMinusRed:
    def __call__(self, images, prompts, metadata):
        return (images[:, 1] - images[:, 0]).mean((1, 2)), {}


def _prompt():
    return "a fox", {}


def known_issues(sd_path: str, logdir: str) -> dict:
    """Reproduce each TRL 0.23 issue the README lists; returns what happened for each (the test checks
    they still happen, so the README stays true)."""
    import os
    import tempfile

    import torch
    from trl import DDPOConfig, DDPOTrainer, DefaultDDPOStableDiffusionPipeline

    def config(**overrides):
        values = dict(num_epochs=1, sample_num_steps=2, sample_batch_size=2, sample_num_batches_per_epoch=1,
                      train_batch_size=2, mixed_precision="no", logdir=tempfile.mkdtemp(dir=logdir), seed=0,
                      train_learning_rate=1e-2)
        values.update(overrides)
        return DDPOConfig(**values)

    def outcome(fn):
        try:
            return f"ok: {fn()}"
        except Exception as error:  # the point is to record the failure
            return f"{type(error).__name__}: {str(error)[:160]}"

    results = {}
    results["async_reward_computation"] = outcome(
        lambda: DDPOTrainer(config(async_reward_computation=True), _GreenMinusRed(), _prompt,
                            DefaultDDPOStableDiffusionPipeline(sd_path)).train()
    )
    results["hook_without_tracker"] = outcome(
        lambda: DDPOTrainer(config(log_with=None), _GreenMinusRed(), _prompt, DefaultDDPOStableDiffusionPipeline(sd_path),
                            image_samples_hook=lambda *args: None).train()
    )

    pipe = DefaultDDPOStableDiffusionPipeline(sd_path)
    trainer = DDPOTrainer(config(), _GreenMinusRed(), _prompt, pipe)
    trainer.train()
    out = tempfile.mkdtemp(dir=logdir)
    results["trainer_save_pretrained"] = outcome(lambda: trainer.save_pretrained(out))

    def reload():
        from diffusers import StableDiffusionPipeline

        unet = StableDiffusionPipeline.from_pretrained(out).unet  # loads, with warnings about unknown keys
        with torch.no_grad():
            unet(torch.zeros(1, 4, 16, 16), 1, torch.zeros(1, 2, unet.config.cross_attention_dim))
        return sorted(os.listdir(out))

    results["reload_saved_pipeline"] = outcome(reload)

    run_dir = tempfile.mkdtemp(dir=logdir)
    project = {"project_dir": run_dir, "automatic_checkpoint_naming": True}
    DDPOTrainer(config(num_epochs=2, save_freq=1, project_kwargs=project), _GreenMinusRed(), _prompt,
                DefaultDDPOStableDiffusionPipeline(sd_path)).train()
    saved = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    resumed_pipe = DefaultDDPOStableDiffusionPipeline(sd_path)
    resumed = DDPOTrainer(config(num_epochs=4, resume_from=os.path.join(run_dir, "checkpoints"), project_kwargs=project),
                          _GreenMinusRed(), _prompt, resumed_pipe)
    lora = {n: p.detach().clone() for n, p in resumed_pipe.unet.named_parameters() if "lora_" in n}
    resumed.train()
    results["lora_resume"] = {
        "checkpoints": saved,
        "first_epoch": resumed.first_epoch,
        "adapters": sorted(resumed_pipe.unet.peft_config),
        "lora_tensors": len(lora),
        "changed_after_resume": sum(
            not torch.equal(p.detach(), lora[n]) for n, p in resumed_pipe.unet.named_parameters() if n in lora
        ),
    }
    return results


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(json.dumps(main(*sys.argv[1:])))
