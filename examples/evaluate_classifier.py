# Copyright 2026 The synartifact-hf contributors. Licensed under the Apache License, Version 2.0.
"""Evaluate an artifact classifier on SynArtifact-1K's test split, in the layout of the paper's Table 2.

Runs ``pipeline("artifact-classification")`` on every test image, parses the answers, scores them with
``artifact_f1`` (detection: also ``artifact_iou``), and writes ``report.md`` / ``report.json`` (the All
row and every class row, the paper's numbers beside ours), ``predictions.jsonl``, a per-class bar chart,
a reference-vs-prediction co-occurrence heat map and, for detection, predicted (yellow) vs ground-truth
(green) boxes as in the paper's Figure 7.

# The zero-shot baseline of Table 2 (vanilla LLaVA-1.5-7B)
python examples/evaluate_classifier.py --config examples/recipes/baseline_llava15.yaml

# A fine-tuned model, next to the Table 2 row it reproduces
python examples/evaluate_classifier.py --model llava-1.5-7b-synartifact-stage1-llm-frozen \
    --dataset synartifact-1k --paper_row stage1_llm_frozen --output_dir eval-stage1-llm-frozen

# Detection
python examples/evaluate_classifier.py --model llava-1.5-7b-synartifact-detection --dataset synartifact-1k \
    --dataset_config detection --max_new_tokens 256 --output_dir eval-detection

The same as a command: ``synartifact-hf evaluate MODEL DATASET --output-dir DIR [--paper-row ROW]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import TrlParser


@dataclass
class EvaluateArguments:
    """What to evaluate, on what, and where the report goes."""

    model: str = field(metadata={"help": "Checkpoint folder or Hub id (any AutoModelForImageTextToText with a chat "
                                 "template)."})
    dataset: str = field(default="synartifact-1k",
                         metadata={"help": "Built SynArtifact-1K folder (`synartifact-hf build-dataset`) or Hub repo."})
    dataset_config: str = field(default="classification", metadata={"help": "classification or detection."})
    split: str = field(default="test", metadata={"help": "Split to evaluate (the paper: test, 265 images)."})
    output_dir: str = field(default="eval", metadata={"help": "Folder for the report, predictions and figures."})
    paper_row: str | None = field(
        default=None,
        metadata={"help": "Table 2 row to put beside ours: baseline_llava15, stage1_llm_frozen, stage1_llm_updated, "
                  "stage2_llm_frozen."},
    )
    batch_size: int = field(default=8, metadata={"help": "Pipeline batch size."})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "Generation budget per answer (default: 128, or 256 for detection)."}
    )
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate the first N rows only."})
    device: str | None = field(default=None, metadata={"help": "torch device, e.g. cuda:0 or cpu (default: the first GPU if there is one, else CPU)."})


def main(args: EvaluateArguments):
    from synartifact_hf.evaluation import evaluate_checkpoint

    report = evaluate_checkpoint(
        args.model, args.dataset, config=args.dataset_config, split=args.split, output_dir=args.output_dir,
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, max_samples=args.max_samples,
        paper_row=args.paper_row, device=args.device,
    )
    print(report.to_markdown())
    return report


if __name__ == "__main__":
    (arguments,) = TrlParser((EvaluateArguments,)).parse_args_and_config()
    main(arguments)
