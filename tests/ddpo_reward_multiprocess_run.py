"""Run under ``torchrun --nproc_per_node 2`` with ``ACCELERATE_USE_CPU=true``: examples/train_ddpo.py's
``main`` for two epochs with the real ArtifactReward (its own ``build_reward``, on this process's device),
wrapped so that each rank records what its reward scored and what it sampled. Each rank writes
RANKDIR/rank<N>.json. Used by tests/test_train_multiprocess.py::test_ddpo_reward_per_process; imports
live in ``main`` so pytest's doctest collection can import this file.

    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 tests/ddpo_reward_multiprocess_run.py SD CLASSIFIER OUT RANKDIR
"""

from __future__ import annotations

import json
import sys


def _fingerprints(images) -> list[str]:
    import hashlib

    from synartifact_hf.reward import to_pil_images

    return [hashlib.sha1(im.tobytes()).hexdigest()[:16] for im in to_pil_images(images)]


class Recorded:
    """The real reward, called as is; it notes the fingerprint of every image it is asked to score."""

    def __init__(self, reward):
        self.reward = reward
        self.scored: list[str] = []

    def __call__(self, images, prompts, metadata):
        self.scored += _fingerprints(images)
        return self.reward(images, prompts, metadata)


def main(sd_path: str, classifier: str, out: str) -> dict:
    import importlib.util
    from pathlib import Path

    import torch

    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location(
        "_train_ddpo", Path(__file__).resolve().parent.parent / "examples" / "train_ddpo.py")
    script = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = script
    spec.loader.exec_module(script)
    args, config = script.make_parser().parse_args_and_config([
        "--pretrained_model", sd_path, "--classifier", classifier, "--classifier_max_new_tokens", "6",
        "--output_dir", f"{out}/out", "--logdir", f"{out}/logs", "--eval_prompts", "goldfish",
        "--num_epochs", "2", "--sample_num_steps", "2", "--sample_batch_size", "2",
        "--sample_num_batches_per_epoch", "1", "--train_batch_size", "2", "--train_gradient_accumulation_steps", "1",
        "--mixed_precision", "no", "--save_freq", "0", "--train_learning_rate", "1e-2"
    ])
    state = script.process_state(config)
    reward = Recorded(script.build_reward(args, device=str(state.device)))
    sampled: list[str] = []

    def hook(prompt_image_data, step, tracker):
        for batch in prompt_image_data:
            sampled.extend(_fingerprints(batch[0]))

    result = script.main(args, config, reward=reward, image_samples_hook=hook)
    history = result["history"]  # no barrier here: main() has ended the process group
    return {
        "rank": state.process_index,
        "num_processes": state.num_processes,
        "accelerator_device": str(state.device),
        "classifier_device": str(reward.reward._classifier().device),
        "bertscore_device": str(reward.reward.scorer._device),
        "sampled": sampled,
        "scored_in_training": reward.scored[: len(sampled)],
        "scored_after_training": len(reward.scored) - len(sampled),
        "history": [[h["reward_mean"], h["reward_std"]] for h in history],
    }


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    from pathlib import Path

    result = main(*sys.argv[1:4])
    folder = Path(sys.argv[4])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{result['rank']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result))
    tmp.rename(path)
