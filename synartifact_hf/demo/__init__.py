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

__all__ = ["RANDOM_MODEL_WARNING", "add_arguments", "run"]

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


def run(args: argparse.Namespace) -> int:
    import datasets

    from ..data.export import card_statistics
    from ..data.sample import build_sample_dataset
    from ..reward import ArtifactReward
    from .comparison import TOY_NOTE, model_row, write_comparison
    from .finetune import REAL_MODEL_LLM_MODE, TINY_RECIPE, finetune_classifier
    from .index import Entry, write_index
    from .progress import StepClock

    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    toy = args.model is None
    do_finetune = toy if args.finetune is None else args.finetune
    do_ddpo = toy if args.ddpo is None else args.ddpo
    clock = StepClock(total=NUM_STEPS)
    entries: list[Entry] = []
    folders: list[tuple[str, str]] = []
    if toy:
        print(RANDOM_MODEL_WARNING)

    clock.step("Build the SynArtifact-1K sample into a dataset folder")
    dataset_dir = build_sample_dataset(out / "synartifact-1k", overwrite=True, progress=True)
    # the overview table only; the per-class, box, generator and size tables are in the dataset card
    print(card_statistics(dataset_dir).split("\n#### ")[0].strip())
    print(f"  (every statistic: {dataset_dir / 'README.md'})")
    folders.append(("synartifact-1k", "the dataset (load it with `datasets.load_dataset`; its card is README.md)"))
    if (dataset_dir / "class_distribution.png").is_file():
        entries.append(Entry("figure", "synartifact-1k/class_distribution.png", "the sample's images per class"))
    splits = datasets.load_dataset(os.fspath(dataset_dir), "classification")
    test, num_train = splits["test"], splits["train"].num_rows

    clock.step("Classify the test split: before fine-tuning")
    model = args.model
    if toy:
        from ..tiny_models import build_tiny_llava

        model = os.fspath(build_tiny_llava(out / "tiny-random-llava"))
        folders.append(("tiny-random-llava", "the classifier before fine-tuning (random weights)"))
    before = _classify(model, dataset_dir, out / "evaluation" / "before", args)
    _print_answers(before)
    reports = [("before", before, "before: tiny random LLaVA" if toy else f"`{args.model}`")]

    tuned = None
    if do_finetune:
        llm_mode = args.llm_mode or ("full" if toy else REAL_MODEL_LLM_MODE)
        recipe = dataclasses.replace(TINY_RECIPE, llm_mode=llm_mode, learning_rate=args.learning_rate,
                                     num_train_epochs=args.epochs)
        clock.step(f"Fine-tune on the train split ({num_train} images; TRL SFTTrainer, llm_mode={llm_mode}, "
                   f"{recipe.num_train_epochs:g} epochs, lr {recipe.learning_rate:g})")
        print(f"  Fine-tuning mode: {llm_mode} ("
              + ("projector + the whole LLM: a random LLM must learn to write option lists" if llm_mode == "full"
                 else "projector only: the paper's best row" if llm_mode == "frozen" else "projector + LoRA on the LLM")
              + ")")
        sft = finetune_classifier(model, dataset_dir, out / "finetuned-classifier", recipe)
        losses = [h["loss"] for h in sft.log_history if "loss" in h]
        if losses:
            print(f"  training loss {float(losses[0]):.3f} (first logged) -> {float(losses[-1]):.3f} (last)")
        tuned = sft.output_dir
        folders.append(("finetuned-classifier", "the fine-tuned classifier and its model card"))

        clock.step("Classify the test split: after fine-tuning")
        after = _classify(tuned, dataset_dir, out / "evaluation" / "after", args)
        _print_answers(after)
        reports.append(("after", after, f"after: fine-tuned ({llm_mode}, {recipe.num_train_epochs:g} epochs)"))
    else:
        clock.skip("Fine-tune on the train split", "a given --model is only evaluated; add --finetune to train it")
        clock.skip("Classify the test split: after fine-tuning", "nothing was fine-tuned")

    clock.step("Eq. 4 reward of the answers; the before/after table")
    reward = ArtifactReward()
    rows = [model_row(name, report, reward) for _, report, name in reports]
    references = [[str(x) for x in p["references"]] for p in before.predictions]
    reference_answers = [example["completion"][0]["content"][0]["text"] for example in test]
    reference_rewards = [float(v) for v in reward.rewards_from_answers(reference_answers)[0].tolist()]
    files = write_comparison(
        rows, out, image_ids=[p["image_id"] for p in before.predictions], references=references,
        reference_rewards=reference_rewards, note=TOY_NOTE.format(num_train=num_train) if toy else None,
    )
    print((out / "comparison.md").read_text(encoding="utf-8").split("## Answers per image")[0].rstrip())
    entries.append(Entry("table", files["markdown"].name, "before/after: parse rate, accuracy, P, R, F1, mean "
                         "Eq. 4 reward, and every answer (numbers also in comparison.json)"))
    for key, _, _ in reports:
        entries.append(Entry("table", f"evaluation/{key}/report.md",
                             f"{key}: Table-2-style report, per class, with the paper's Table 2 for reference"))
        for name in ("per_class_scores", "label_cooccurrence"):
            entries.append(Entry("figure", f"evaluation/{key}/{name}.png",
                                 f"{key}: " + ("precision / recall / F1 per class" if name == "per_class_scores"
                                               else "reference class vs predicted classes")))

    if do_ddpo:
        from .ddpo_run import run_ddpo

        classifier = tuned or model
        reward_mode = args.ddpo_reward or ("likelihood" if toy else "bertscore")
        clock.step(f"DDPO: {args.ddpo_epochs} epochs of a tiny Stable Diffusion, {reward_mode} reward of "
                   + ("the fine-tuned classifier" if tuned else "the classifier"))
        if reward_mode == "likelihood" and toy:
            print("  Reward form: likelihood (the classifier's option probabilities). The toy classifier gives the "
                  "same answer\n  to every noise image, so Eq. 4 of the answer would be constant and DDPO would get "
                  "no signal.")
        ddpo = run_ddpo(classifier, out / "ddpo", epochs=args.ddpo_epochs, reward_mode=reward_mode,
                        max_new_tokens=args.max_new_tokens, scorer=reward.scorer)
        means = [round(h["reward_mean"], 4) for h in ddpo.history]
        print(f"  mean reward per epoch: {means}")
        print("  (a random tiny UNet for a few epochs: the images are noise, the curve shows the loop working)")
        entries.append(Entry("figure", "ddpo/reward_curve.png",
                             f"mean reward ({reward_mode}) per DDPO epoch, +-1 std"))
        folders.append(("ddpo", "the DDPO LoRA (`lora/`), per-epoch numbers (`history.json`), the tiny SD pipeline"))
        from .generator_comparison import add_to_demo

        add_to_demo(ddpo, out, classifier, args, entries, folders)
    else:
        clock.skip("DDPO with the classifier's reward", "a given --model is only evaluated; add --ddpo to run it")

    clock.step("Index of the tables and figures")
    clock.finish()
    index = write_index(
        out, entries, title="synartifact-hf demo output",
        intro=(TOY_NOTE.format(num_train=num_train) if toy else f"Classifier: `{args.model}`.")
        + "\n\nWritten by `synartifact-hf demo` (`make demo`).",
        durations=clock.durations, folders=folders,
    )
    print(f"  {index}")
    print(f"Demo finished in {clock.elapsed:.0f} s; start with {index}")
    if toy:
        print(RANDOM_MODEL_WARNING)
    return 0
