"""Run under ``torchrun --nproc_per_node 2`` with ``ACCELERATE_USE_CPU=true``: two epochs of our DDPO with
LoRA in two CPU processes (gloo), checkpoint each epoch. Each rank writes LOGDIR/rank<N>.json (files,
not stdout: the two ranks' lines would interleave). Used by
tests/test_ddpo.py::test_two_processes; imports live in ``main`` so pytest's doctest collection can
import this file.

    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 tests/ddpo_multiprocess_run.py PIPELINE_DIR LOGDIR

PIPELINE_DIR is a Stable Diffusion or SDXL folder (the class comes from its model_index.json).
"""

from __future__ import annotations

import json
import sys


class GreenMinusRed:
    def __call__(self, images, prompts, metadata):
        return (images[:, 1] - images[:, 0]).mean((1, 2)) * 100, {}


def main(sd_path: str, logdir: str) -> dict:
    import torch
    from diffusers import DDIMScheduler

    from synartifact_hf.ddpo import DDPOConfig, DDPOTrainer, PromptList, pipeline_class

    torch.set_num_threads(1)
    pipe = pipeline_class(sd_path).from_pretrained(sd_path)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    config = DDPOConfig(
        logdir=logdir, num_epochs=2, sample_num_steps=2, sample_batch_size=2, sample_num_batches_per_epoch=2,
        train_batch_size=2, train_learning_rate=1e-2, train_adam_weight_decay=0.0, use_lora=True, save_freq=1,
        log_images=False, per_prompt_stat_tracking=True, per_prompt_stat_tracking_min_count=2,
    )
    trainer = DDPOTrainer(config, GreenMinusRed(), PromptList(["a fox", "a cat"]), pipe)
    lora = {n: p.detach().clone() for n, p in pipe.unet.named_parameters() if p.requires_grad}
    first_batch = []
    trainer.image_samples_callback = lambda data, step, tracker: first_batch.append(data[0][3].tolist())
    history = trainer.train()
    trained = {n: p.detach() for n, p in pipe.unet.named_parameters() if n in lora}
    return {
        "rank": trainer.accelerator.process_index,
        "num_processes": trainer.accelerator.num_processes,
        "local_rewards": first_batch[0],
        "history": [[h["reward_mean"], h["reward_std"], h["loss"]] for h in history],
        "changed": sum(not torch.equal(trained[n], lora[n]) for n in lora),
        "num_lora": len(lora),
        "checksum": float(sum(t.double().abs().sum() for t in trained.values())),
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    from pathlib import Path

    result = main(*sys.argv[1:])
    out = Path(sys.argv[2]) / f"rank{result['rank']}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result))
    tmp.rename(out)
