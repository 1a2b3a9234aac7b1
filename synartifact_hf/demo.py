"""`synartifact-hf demo`: the whole method end to end on the embedded sample, offline.

1. the paper's classification instruction, rendered through the classifier's chat template;
2. the answer parser and ``artifact_f1`` on a few hand-written answers;
3. the SynArtifact-1K sample (18 real annotations, placeholder images) built into a Hub-ready dataset
   folder, and its card statistics;
4. the ``artifact-classification`` pipeline on the sample's test split, scored with ``artifact_f1``
   (report + figures written to the output folder);
5. the artifact reward (paper Eq. 4, BERTScore with the offline all-MiniLM-L6-v2 backbone) of those
   answers.

Without ``--model`` the classifier is a tiny LLaVA with RANDOM weights built on the spot: its answers
and scores are meaningless and only show the plumbing. ``--model PATH_OR_REPO`` (``make demo
MODEL=...``) runs a real checkpoint instead.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

RANDOM_MODEL_WARNING = (
    "NOTE: no --model given, so the classifier is a tiny LLaVA with RANDOM weights built locally.\n"
    "      Its answers, metrics and rewards below are meaningless: they show the plumbing only.\n"
    "      Use `make demo MODEL=<checkpoint folder or hub id>` for real predictions."
)

# Hand-written answers in the styles models produce, each paired with a made-up reference label set;
# some answers are incomplete or wrong against it on purpose, so the scores show what a miss costs.
EXAMPLE_ANSWERS: tuple[tuple[str, list[str]], ...] = (
    ("1. Distorted and deformed components.\n2. Omitted components.",
     ["Distorted and deformed components", "Omitted components"]),
    ("1) distortion\n2) Other artifacts: the gown is out of frame", ["Distorted and deformed components"]),
    ("No artifacts", ["No artifacts"]),
    ("blurry; illegible text", ["Localized blur", "Illegible letters"]),
    ("I cannot tell.", ["Awkward facial expression"]),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="classifier checkpoint (folder or hub id); default: a tiny random LLaVA (plumbing only)")
    parser.add_argument("--output-dir", default="demo-output", help="where the dataset, model and reports go")
    parser.add_argument("--batch-size", type=int, default=4, help="pipeline batch size")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="tokens generated per answer")


def _section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 74 - len(title)))


def _print_scores(metrics: dict) -> None:
    keys = ("accuracy", "precision", "recall", "f1", "subset_accuracy", "hamming_loss")
    print("  " + "  ".join(f"{k}={metrics[k]:.3f}" for k in keys if k in metrics))


def run(args: argparse.Namespace) -> int:
    import evaluate

    from . import metrics
    from .data.export import card_statistics
    from .data.sample import build_sample_dataset
    from .evaluation import evaluate_checkpoint
    from .parsing import parse_answer
    from .prompts import classification_instruction

    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)

    _section("1. The classification instruction (paper Fig. 11)")
    instruction = classification_instruction()
    lines = instruction.splitlines()
    print("\n".join(lines[:3] + ["  ..."] + lines[-2:]))
    print(f"({len(lines)} lines, {len(instruction)} characters)")

    _section("2. Parsing free-form answers + artifact_f1")
    parsed = []
    for answer, _ in EXAMPLE_ANSWERS:
        result = parse_answer(answer)
        parsed.append(result.labels)
        issues = f"   issues: {result.issues}" if result.issues else ""
        print(f"  {answer!r:70.70} -> {result.labels}{issues}")
    f1 = evaluate.load(metrics.path("artifact_f1"))
    _print_scores(f1.compute(predictions=parsed, references=[labels for _, labels in EXAMPLE_ANSWERS]))

    _section("3. SynArtifact-1K sample -> Hub-ready dataset folder")
    dataset_dir = build_sample_dataset(out / "synartifact-1k", overwrite=True)
    print(f"  built {dataset_dir} (load it with datasets.load_dataset({str(dataset_dir)!r}))")
    print(card_statistics(dataset_dir))

    _section("4. pipeline('artifact-classification') on the test split + artifact_f1")
    model = args.model
    if model is None:
        from .tiny_models import build_tiny_llava

        model = os.fspath(build_tiny_llava(out / "tiny-random-llava"))
        print(RANDOM_MODEL_WARNING)
    report = evaluate_checkpoint(
        model, dataset_dir, output_dir=out / "evaluation", batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, paper_row="stage1_llm_frozen",
    )
    for record in report.predictions:
        print(f"  image {record['image_id']}: reference {record['references']}")
        print(f"      answer {record['generated_text'][:70]!r} -> {record['labels']}")
    _print_scores(report.metrics)
    print(f"  report, predictions and figures in {out / 'evaluation'}")

    _section("5. Artifact reward (paper Eq. 4, BERTScore / all-MiniLM-L6-v2)")
    from .reward import ArtifactReward

    reward = ArtifactReward()
    lo, hi = reward.bounds
    print(f"  alpha={reward.alpha:.4f} beta={reward.beta:.4f}: r lies in [{lo:.3f}, {hi:.3f}]")
    # Hand-written answers first (a clean image should earn more than an artifact-ridden one), then the
    # classifier's answers from step 4.
    answers = [answer for answer, _ in EXAMPLE_ANSWERS[:3]] + [r["generated_text"] for r in report.predictions]
    values, _ = reward.rewards_from_answers(answers)
    for answer, value in zip(answers, values.tolist()):
        print(f"  r = {value:7.4f}   for {answer[:60]!r}")
    if args.model is None:
        print(RANDOM_MODEL_WARNING)
    return 0
