"""`synartifact-hf compare-generators DIR_A DIR_B --output DIR`: paired comparison of two ``eval-generator``
folders of the same prompts and seeds (per-class and overall differences B - A with paired-bootstrap
intervals, McNemar's exact test, Holm-corrected; a table and a figure). See :mod:`.compare`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir_a", metavar="DIR_A", help="eval-generator folder of model A (e.g. before fine-tuning)")
    parser.add_argument("dir_b", metavar="DIR_B", help="eval-generator folder of model B (e.g. after)")
    parser.add_argument("--output", required=True, help="folder for comparison.json / .md / .png")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default: %(default)s)")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from .compare import NotComparableError, compare_folders

    try:
        out = compare_folders(args.dir_a, args.dir_b, args.output, resamples=args.resamples, seed=args.bootstrap_seed,
                              overwrite=args.overwrite)
    except (NotComparableError, FileExistsError) as err:
        raise SystemExit(f"compare-generators: {err}") from None
    print((out / "comparison.md").read_text(encoding="utf-8"))
    print(f"written: {out}")
    return 0
