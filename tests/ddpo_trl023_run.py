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

    # TRL 0.23 known issue: the pipeline wrapper logs through accelerate, which needs its state first
    accelerate.PartialState()
    from trl import DDPOConfig, DDPOTrainer, DefaultDDPOStableDiffusionPipeline

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
    }


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    print(json.dumps(main(*sys.argv[1:])))
