"""`synartifact-hf demo` (``make demo``): the paper's method end to end on the embedded sample, offline.

1. build the SynArtifact-1K sample (its annotations, placeholder images) into a Hub-ready dataset folder;
2. classify the test split with ``pipeline("artifact-classification")``: the "before" row;
3. fine-tune that classifier on the ``classification`` train split through the code of
   ``examples/train_classifier.py`` (TRL ``SFTTrainer``; :mod:`.finetune` says which recipe and why);
4. classify the test split again: the "after" row, beside "before" in one Table-2-style table
   (:mod:`.comparison`: parse rate, accuracy, precision, recall, F1);
5. the Eq. 4 reward (BERTScore, offline all-MiniLM-L6-v2) of both models' answers, in the same table;
6. a few DDPO epochs of a tiny Stable Diffusion rewarded by the fine-tuned classifier, and the reward curve
   (:mod:`.ddpo_run`, which also says why the toy uses the reward's likelihood form there);
7. ``README.md`` in the output folder: an index of every table and figure (:mod:`.index`).

Without ``--model`` the classifier starts as a tiny LLaVA with RANDOM weights built on the spot and the
images are placeholders: a toy whose numbers show the mechanics (answers become parseable option lists,
metrics and rewards move), not the paper's result. ``--model PATH_OR_REPO`` (``make demo MODEL=...``)
evaluates a real checkpoint instead; steps 3 and 6 then run only when asked (``--finetune``, ``--ddpo``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

__all__ = ["RANDOM_MODEL_WARNING", "add_arguments", "reference_answers", "run"]

RANDOM_MODEL_WARNING = (
    "NOTE: no --model given, so the classifier starts as a tiny LLaVA with RANDOM weights built locally, and\n"
    "      the images are placeholders. A toy: the numbers show the mechanics (answers become parseable,\n"
    "      metrics and rewards move), not the paper's result. `make demo MODEL=<checkpoint>` runs a real one."
)
NUM_STEPS = 7


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .finetune import TINY_RECIPE

    parser.add_argument("--model", default=None,
                        help="classifier checkpoint (folder or hub id); default: a tiny random LLaVA (a toy)")
    parser.add_argument("--output-dir", default="demo-output", help="where the dataset, models and reports go")
    parser.add_argument("--batch-size", type=int, default=6, help="pipeline batch size")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="tokens generated per answer")
    parser.add_argument("--finetune", action=argparse.BooleanOptionalAction, default=None,
                        help="fine-tune the classifier (step 3); default: on for the tiny model, off with --model")
    parser.add_argument("--ddpo", action=argparse.BooleanOptionalAction, default=None,
                        help="run DDPO with the classifier's reward (step 6); default: on for the tiny model, off "
                             "with --model")
    parser.add_argument("--llm-mode", choices=("frozen", "full", "lora"), default=None,
                        help="what trains besides the projector; default: full for the tiny model (a random LLM "
                             "must learn the answer format), frozen (the paper's best row) with --model")
    parser.add_argument("--epochs", type=float, default=TINY_RECIPE.num_train_epochs, help="fine-tuning epochs")
    parser.add_argument("--learning-rate", type=float, default=TINY_RECIPE.learning_rate,
                        help="fine-tuning learning rate")
    parser.add_argument("--ddpo-epochs", type=int, default=10, help="DDPO epochs (step 6)")
    parser.add_argument("--ddpo-reward", choices=("bertscore", "likelihood"), default=None,
                        help="DDPO's reward: bertscore (Eq. 4 of the answer) or likelihood (the classifier's option "
                             "probabilities); default: likelihood for the tiny model (its answer is the same for every "
                             "noise image, so Eq. 4 gives DDPO no signal; see synartifact_hf.demo.ddpo_run), "
                             "bertscore with --model")


def _classify(model, dataset_dir, output_dir, args):
    from ..evaluation import evaluate_checkpoint

    return evaluate_checkpoint(model, dataset_dir, output_dir=output_dir, batch_size=args.batch_size,
                               max_new_tokens=args.max_new_tokens)


def _print_answers(report, limit: int = 3) -> None:
    for record in report.predictions[:limit]:
        print(f"  image {record['image_id']}: {record['generated_text'][:70]!r} -> {record['labels']}")
    if len(report.predictions) > limit:
        print(f"  ... ({len(report.predictions) - limit} more in {report.files.get('predictions', 'predictions.jsonl')})")


@dataclasses.dataclass
class _Run:
    """What the steps share: the settings, the step clock, and the files and folders for the index."""

    args: argparse.Namespace
    out: Path
    toy: bool
    clock: object
    entries: list = dataclasses.field(default_factory=list)
    folders: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    from .progress import StepClock

    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    demo = _Run(args=args, out=out, toy=args.model is None, clock=StepClock(total=NUM_STEPS))
    do_finetune = demo.toy if args.finetune is None else args.finetune
    do_ddpo = demo.toy if args.ddpo is None else args.ddpo
    if demo.toy:
        print(RANDOM_MODEL_WARNING)

    dataset_dir, test, num_train = _build_dataset(demo)
    model, before = _classify_before(demo, dataset_dir)
    reports = [("before", before, "before: tiny random LLaVA" if demo.toy else f"`{args.model}`")]
    tuned = None
    if do_finetune:
        tuned, after, label = _finetune_and_classify(demo, model, dataset_dir, num_train)
        reports.append(("after", after, label))
    else:
        demo.clock.skip("Fine-tune on the train split", "a given --model is only evaluated; add --finetune to train it")
        demo.clock.skip("Classify the test split: after fine-tuning", "nothing was fine-tuned")
    reward = _reward_table(demo, reports, test, num_train)
    if do_ddpo:
        _ddpo(demo, tuned or model, fine_tuned=tuned is not None, scorer=reward.scorer)
    else:
        demo.clock.skip("DDPO with the classifier's reward", "a given --model is only evaluated; add --ddpo to run it")
    _write_index(demo, num_train)
    return 0


def _build_dataset(demo: _Run):
    """Step 1: the sample as a dataset folder; returns it, the test split and the train split's size."""
    import datasets

    from ..data.embedded_sample import build_sample_dataset
    from ..data.export import card_statistics
    from .index import Entry

    demo.clock.step("Build the SynArtifact-1K sample into a dataset folder")
    dataset_dir = build_sample_dataset(demo.out / "synartifact-1k", overwrite=True, progress=True)
    # the overview table only; the per-class, box, generator and size tables are in the dataset card
    print(card_statistics(dataset_dir).split("\n#### ")[0].strip())
    print(f"  (every statistic: {dataset_dir / 'README.md'})")
    demo.folders.append(("synartifact-1k", "the dataset (load it with `datasets.load_dataset`; its card is README.md)"))
    if (dataset_dir / "class_distribution.png").is_file():
        demo.entries.append(Entry("figure", "synartifact-1k/class_distribution.png", "the sample's images per class"))
    splits = datasets.load_dataset(os.fspath(dataset_dir), "classification")
    return dataset_dir, splits["test"], splits["train"].num_rows


def _classify_before(demo: _Run, dataset_dir):
    """Step 2: the classifier to start from (the tiny random LLaVA unless --model) and its report."""
    demo.clock.step("Classify the test split: before fine-tuning")
    model = demo.args.model
    if demo.toy:
        from ..tiny_models import build_tiny_llava

        model = os.fspath(build_tiny_llava(demo.out / "tiny-random-llava"))
        demo.folders.append(("tiny-random-llava", "the classifier before fine-tuning (random weights)"))
    before = _classify(model, dataset_dir, demo.out / "evaluation" / "before", demo.args)
    _print_answers(before)
    return model, before


def _finetune_and_classify(demo: _Run, model, dataset_dir, num_train: int):
    """Steps 3 and 4: fine-tune (TRL SFTTrainer) and classify again; returns the folder, report and row label."""
    from .finetune import REAL_MODEL_LLM_MODE, TINY_RECIPE, finetune_classifier

    args = demo.args
    llm_mode = args.llm_mode or ("full" if demo.toy else REAL_MODEL_LLM_MODE)
    recipe = dataclasses.replace(TINY_RECIPE, llm_mode=llm_mode, learning_rate=args.learning_rate,
                                 num_train_epochs=args.epochs)
    demo.clock.step(f"Fine-tune on the train split ({num_train} images; TRL SFTTrainer, llm_mode={llm_mode}, "
                    f"{recipe.num_train_epochs:g} epochs, lr {recipe.learning_rate:g})")
    print(f"  Fine-tuning mode: {llm_mode} ("
          + ("projector + the whole LLM: a random LLM must learn to write option lists" if llm_mode == "full"
             else "projector only: the paper's best row" if llm_mode == "frozen" else "projector + LoRA on the LLM")
          + ")")
    sft = finetune_classifier(model, dataset_dir, demo.out / "finetuned-classifier", recipe)
    losses = [h["loss"] for h in sft.log_history if "loss" in h]
    if losses:
        print(f"  training loss {float(losses[0]):.3f} (first logged) -> {float(losses[-1]):.3f} (last)")
    demo.folders.append(("finetuned-classifier", "the fine-tuned classifier and its model card"))

    demo.clock.step("Classify the test split: after fine-tuning")
    after = _classify(sft.output_dir, dataset_dir, demo.out / "evaluation" / "after", args)
    _print_answers(after)
    return sft.output_dir, after, f"after: fine-tuned ({llm_mode}, {recipe.num_train_epochs:g} epochs)"


def reference_answers(split) -> list[str]:
    """The reference answer texts of a ``classification`` split, read from the ``completion`` column
    alone (no image is decoded)."""
    return [completion[0]["content"][0]["text"] for completion in split.select_columns(["completion"])[:]["completion"]]


def _reward_table(demo: _Run, reports, test, num_train: int):
    """Step 5: Eq. 4 of every answer and of the reference answers; the before/after table. Returns the
    reward (its BERTScore scorer is reused by DDPO)."""
    from ..reward import ArtifactReward
    from .comparison import TOY_NOTE, model_row, write_comparison
    from .index import Entry

    demo.clock.step("Eq. 4 reward of the answers; the before/after table")
    reward = ArtifactReward()
    rows = [model_row(name, report, reward) for _, report, name in reports]
    before = reports[0][1]
    references = [[str(x) for x in p["references"]] for p in before.predictions]
    reference_rewards = [float(v) for v in reward.rewards_from_answers(reference_answers(test))[0].tolist()]
    files = write_comparison(
        rows, demo.out, image_ids=[p["image_id"] for p in before.predictions], references=references,
        reference_rewards=reference_rewards, note=TOY_NOTE.format(num_train=num_train) if demo.toy else None,
    )
    print((demo.out / "comparison.md").read_text(encoding="utf-8").split("## Answers per image")[0].rstrip())
    demo.entries.append(Entry("table", files["markdown"].name, "before/after: parse rate, accuracy, P, R, F1, mean "
                              "Eq. 4 reward, and every answer (numbers also in comparison.json)"))
    for key, _, _ in reports:
        demo.entries.append(Entry("table", f"evaluation/{key}/report.md",
                                  f"{key}: Table-2-style report, per class, with the paper's Table 2 for reference"))
        for name in ("per_class_scores", "label_cooccurrence"):
            demo.entries.append(Entry("figure", f"evaluation/{key}/{name}.png",
                                      f"{key}: " + ("precision / recall / F1 per class" if name == "per_class_scores"
                                                    else "reference class vs predicted classes")))
    return reward


def _ddpo(demo: _Run, classifier, *, fine_tuned: bool, scorer) -> None:
    """Step 6: a few DDPO epochs of a tiny Stable Diffusion rewarded by the classifier; the reward curve."""
    from .ddpo_run import run_ddpo
    from .index import Entry

    args = demo.args
    reward_mode = args.ddpo_reward or ("likelihood" if demo.toy else "bertscore")
    demo.clock.step(f"DDPO: {args.ddpo_epochs} epochs of a tiny Stable Diffusion, {reward_mode} reward of "
                    + ("the fine-tuned classifier" if fine_tuned else "the classifier"))
    if reward_mode == "likelihood" and demo.toy:
        print("  Reward form: likelihood (the classifier's option probabilities). The toy classifier gives the "
              "same answer\n  to every noise image, so Eq. 4 of the answer would be constant and DDPO would get "
              "no signal.")
    ddpo = run_ddpo(classifier, demo.out / "ddpo", epochs=args.ddpo_epochs, reward_mode=reward_mode,
                    max_new_tokens=args.max_new_tokens, scorer=scorer)
    means = [round(h["reward_mean"], 4) for h in ddpo.history]
    print(f"  mean reward per epoch: {means}")
    print("  (a random tiny UNet for a few epochs: the images are noise, the curve shows the loop working)")
    demo.entries.append(Entry("figure", "ddpo/reward_curve.png", f"mean reward ({reward_mode}) per DDPO epoch, +-1 std"))
    demo.folders.append(("ddpo", "the DDPO LoRA (`lora/`), per-epoch numbers (`history.json`), the tiny SD pipeline"))
    from .generator_comparison import add_to_demo

    add_to_demo(ddpo, demo.out, classifier, args, demo.entries, demo.folders)


def _write_index(demo: _Run, num_train: int) -> None:
    """Step 7: README.md in the output folder, listing every table and figure."""
    from .comparison import TOY_NOTE
    from .index import write_index

    demo.clock.step("Index of the tables and figures")
    demo.clock.finish()
    index = write_index(
        demo.out, demo.entries, title="synartifact-hf demo output",
        intro=(TOY_NOTE.format(num_train=num_train) if demo.toy else f"Classifier: `{demo.args.model}`.")
        + "\n\nWritten by `synartifact-hf demo` (`make demo`).",
        durations=demo.clock.durations, folders=demo.folders,
    )
    print(f"  {index}")
    print(f"Demo finished in {demo.clock.elapsed:.0f} s; start with {index}")
    if demo.toy:
        print(RANDOM_MODEL_WARNING)
