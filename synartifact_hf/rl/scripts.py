"""What the RL example scripts (``examples/train_ddpo.py``, ``examples/train_flow_grpo.py``) share: the reward,
prompt and output arguments (`RewardScriptArguments`, whose help texts are the docs), building the
`ArtifactReward` on a process's device, joining the trainer's process state, the before/after grid's images,
and writing the run's results (history, reward curve, before/after grid)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RewardScriptArguments", "build_reward", "process_state", "sample_grid_images", "train_and_save", "write_results"]


@dataclass
class RewardScriptArguments:
    """Reward, prompt and figure options; the training knobs are the trainer config's."""

    classifier: str = field(
        default="llava-1.5-7b-synartifact-stage1-llm-frozen",
        metadata={"help": "Artifact classifier for the reward: a folder from examples/train_classifier.py or a Hub id."},
    )
    reward_mode: str = field(default="bertscore", metadata={"help": "'bertscore' (paper Eq. 4) or 'likelihood' (per-option scores)."})
    reward_alpha: float | None = field(default=None, metadata={"help": "Eq. 4 alpha (default 1/13)."})
    reward_beta: float | None = field(default=None, metadata={"help": "Eq. 4 beta (default: the value making r >= 0)."})
    reward_component: str = field(default="f1", metadata={"help": "BERTScore component: f1, precision or recall."})
    bertscore_model: str = field(
        default="all-MiniLM-L6-v2", metadata={"help": "BERTScore backbone (all-MiniLM-L6-v2 offline, or roberta-large)."}
    )
    reward_baseline: str | None = field(default=None, metadata={"help": "BERTScore rescaling: none, 'bert_score' or 'taxonomy'."})
    reward_batch_size: int = field(default=8, metadata={"help": "Images per classifier forward pass."})
    classifier_max_new_tokens: int = field(default=64, metadata={"help": "Answer length budget of the classifier."})
    prompt_template: str = field(default="{}", metadata={"help": "Template around each ImageNet class name."})
    eval_prompts: list[str] = field(
        default_factory=lambda: ["goldfish, Carassius auratus", "tree frog, tree-frog", "golden retriever", "tabby, tabby cat"],
        metadata={"help": "Prompts of the before/after grid (one column each)."},
    )
    eval_seed: int = field(default=0, metadata={"help": "Seed of the grid's first column (column i uses eval_seed + i)."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Repo id named in the model card."})


def build_reward(args: RewardScriptArguments, device: str):
    """The `ArtifactReward` the arguments describe, on ``device`` (each process its own classifier)."""
    from synartifact_hf.reward import ArtifactReward

    kwargs = {} if args.reward_alpha is None else {"alpha": args.reward_alpha}
    return ArtifactReward(
        args.classifier, mode=args.reward_mode, beta=args.reward_beta, component=args.reward_component,
        bertscore_model=args.bertscore_model, baseline=args.reward_baseline, batch_size=args.reward_batch_size,
        classifier_kwargs={"max_new_tokens": args.classifier_max_new_tokens}, device=device, **kwargs,
    )


def process_state(config):
    """This process's accelerate state, the one the trainer's Accelerator will join: the package's one rule
    (:func:`synartifact_hf.scaleout.process_state`), with the config's ``cpu``."""
    from synartifact_hf.scaleout import process_state as package_process_state

    return package_process_state(cpu=bool(config.accelerator_kwargs.get("cpu")))


def sample_grid_images(pipe, args: RewardScriptArguments, **call_kwargs) -> list:
    """The grid's images: one per eval prompt, each with its own fixed seed; the same call before and after
    training (``call_kwargs``: the pipeline call's steps, guidance, size)."""
    import torch

    images = []
    for i, prompt in enumerate(args.eval_prompts):
        generator = torch.Generator(device="cpu").manual_seed(args.eval_seed + i)
        with torch.no_grad():
            out = pipe(args.prompt_template.format(prompt), generator=generator, output_type="pil", **call_kwargs)
        images.append(out.images[0])
    return images


def train_and_save(trainer, output_dir) -> tuple[list, Path]:
    """Check the launch, train, save the weights to ``output_dir`` (collective: every process takes part) and
    close the trackers; returns ``(history, output folder)``."""
    from synartifact_hf.training import check_launch

    check_launch(trainer.accelerator.state)
    history = trainer.train()
    out = trainer.save_pretrained(output_dir)  # before end_training ends the process group
    trainer.accelerator.end_training()  # flush and close the trackers
    return history, out


def write_results(out: Path, history, reward, args: RewardScriptArguments, before, after, title: str) -> list:
    """history.json, reward_curve.png (mean reward per epoch, +-1 std band) and before_after.png (with each
    image's reward) in ``out``; prints the reward per epoch; returns the grid's rewards ``[before, after]``."""
    from synartifact_hf.atomic import write_text_atomic
    from synartifact_hf.viz import plot_reward_curve, save_before_after_grid

    grid_rewards = [reward(images, list(args.eval_prompts), [{}] * len(images))[0].tolist() for images in (before, after)]
    plot_reward_curve(history, out / "reward_curve.png", title=title)
    save_before_after_grid(before, after, out / "before_after.png", prompts=args.eval_prompts,
                           rewards_before=grid_rewards[0], rewards_after=grid_rewards[1])
    write_text_atomic(out / "history.json", json.dumps(history, indent=1))
    print(f"reward per epoch: {[round(h['reward_mean'], 4) for h in history]}; results in {out}")
    return grid_rewards
