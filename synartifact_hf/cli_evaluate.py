"""`synartifact-hf evaluate MODEL DATASET`: Table-2-style report of a classifier on a built dataset's split.

Thin wrapper over :func:`synartifact_hf.evaluation.evaluate_checkpoint`; see its module docstring for
what the report holds.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .backends import MODEL_HELP, add_served_arguments
    from .evaluation import PAPER_TABLE2

    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("dataset", help="built SynArtifact-1K folder (synartifact-hf build-dataset) or Hub dataset repo")
    parser.add_argument("--config", default="classification", choices=["classification", "detection"],
                        help="dataset config; detection also scores boxes with artifact_iou (default: %(default)s)")
    parser.add_argument("--split", default="test", help="split to evaluate (default: %(default)s)")
    parser.add_argument("--output-dir", required=True, help="folder for report.md/json, predictions.jsonl, figures")
    parser.add_argument("--paper-row", choices=sorted(PAPER_TABLE2),
                        help="Table 2 row whose numbers go beside ours")
    parser.add_argument("--batch-size", type=int, default=8, help="pipeline batch size (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="generation budget per answer (default: 128, 256 for detection)")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate the first N rows only")
    parser.add_argument("--device", default=None, help="torch device for the pipeline (e.g. cuda:0)")
    add_served_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .backends import ClassificationFailed, ServedClassifierError
    from .evaluation import evaluate_checkpoint

    try:
        report = evaluate_checkpoint(
            args.model, args.dataset, config=args.config, split=args.split, output_dir=args.output_dir,
            batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, max_samples=args.max_samples,
            paper_row=args.paper_row, device=args.device, served_model=args.served_model,
            concurrency=args.concurrency, timeout=args.request_timeout, max_retries=args.max_retries,
        )
    except (ServedClassifierError, ClassificationFailed) as err:
        raise SystemExit(f"evaluate: error: {err}; no report written") from None
    if report.files:  # the main process wrote it (under accelerate launch / torchrun, only that one)
        print(report.to_markdown())
        print(f"Report written to {report.files['report_md']}")
    return 0
