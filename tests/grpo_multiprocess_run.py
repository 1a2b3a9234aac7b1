"""Run under ``torchrun --nproc_per_node N`` with ``ACCELERATE_USE_CPU=true`` (or plainly, for one process): one
Flow-GRPO epoch with LoRA on a tiny SD3 pipeline, ``4 / N`` images per process, one prompt (so its group spans
the processes). Each rank writes LOGDIR/rank<N>.json: the advantages the epoch computed (over every process's
rewards) and the ones it trained on, its rewards, and a checksum of its LoRA weights after the step. Used by
tests/test_grpo.py::test_two_processes_give_one_process_advantages; imports live in ``main`` so pytest's
doctest collection can import this file.

    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 tests/grpo_multiprocess_run.py SD3_DIR LOGDIR
"""

from __future__ import annotations

import json
import sys


class GreenMinusRed:
    def __call__(self, images, prompts, metadata):
        return (images[:, 1] - images[:, 0]).mean((1, 2)) * 100, {}


def main(sd3_path: str, logdir: str) -> dict:
    import numpy as np
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env
    from diffusers import StableDiffusion3Pipeline

    from synartifact_hf.grpo import FlowGRPOConfig, FlowGRPOTrainer, PromptList

    torch.set_num_threads(1)
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    per_process = 4 // state.num_processes
    pipe = StableDiffusion3Pipeline.from_pretrained(sd3_path)
    config = FlowGRPOConfig(
        logdir=logdir, num_epochs=1, sample_num_steps=3, sample_batch_size=per_process,
        num_images_per_prompt=per_process, sample_num_batches_per_epoch=1, train_batch_size=per_process,
        train_learning_rate=1e-2, train_adam_weight_decay=0.0, beta=0.04, save_freq=0, log_images=False,
    )
    seen = {}

    class Recording(FlowGRPOTrainer):
        def _advantages(self, prompts, rewards):
            seen["all"] = super()._advantages(prompts, rewards)
            seen["prompts"] = prompts
            return seen["all"]

    trainer = Recording(config, GreenMinusRed(), PromptList(["a fox"]), pipe,
                        image_samples_hook=lambda data, step, tracker: seen.setdefault("local", data[0][3].tolist()))
    history = trainer.train()
    lora = [p.detach().double() for n, p in pipe.transformer.named_parameters() if "lora_" in n]
    return {
        "rank": state.process_index,
        "num_processes": state.num_processes,
        "local_rewards": seen["local"],
        "advantages": np.asarray(seen["all"]).tolist(),
        "prompts": list(seen["prompts"]),
        "history": [[h["reward_mean"], h["reward_std"], h["loss"]] for h in history],
        "checksum": float(sum(t.abs().sum() for t in lora)),
    }


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    from synartifact_hf.atomic import write_text_atomic

    outcome = main(*sys.argv[1:])  # one file per rank: two ranks' stdout lines would interleave
    write_text_atomic(f"{sys.argv[2]}/rank{outcome['rank']}.json", json.dumps(outcome))
