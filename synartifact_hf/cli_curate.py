"""`synartifact-hf curate PATH --model M --output-dir OUT --keep clean`: label a folder of images or a
dataset with an artifact classifier and write the kept rows as a Hub-ready dataset folder.

Thin wrapper over :mod:`synartifact_hf.curation` (see its docstring for the columns and the cache);
runs unchanged under ``accelerate launch`` / ``torchrun`` (each process labels its share, the main
process writes the folder and pushes it).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .backends import MODEL_HELP, add_served_arguments
    from .curation import DEFAULT_ROWS_PER_CACHE_FILE, KEEP_CHOICES

    parser.add_argument("path", metavar="PATH",
                        help="image folder (searched recursively), built dataset folder, or a dataset for load_dataset")
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--output-dir", required=True, help="dataset folder to write (parquet shards + README card)")
    parser.add_argument("--keep", choices=KEEP_CHOICES, default="clean",
                        help="rows to keep: clean = no artifact named, flagged = any artifact, all (default: %(default)s)")
    parser.add_argument("--config", default=None, help="dataset config to read (default: its default)")
    parser.add_argument("--split", default="train", help="dataset split to read and write (default: %(default)s)")
    parser.add_argument("--image-column", default="image", help="column holding the image (default: %(default)s)")
    parser.add_argument("--column-prefix", default="",
                        help="prefix for the added columns, e.g. predicted_ when the dataset has its own labels")
    parser.add_argument("--scores", action="store_true", help="also add the 14 option scores")
    parser.add_argument("--batch-size", type=int, default=8, help="images per generate() call (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="answer length cap (default: %(default)s)")
    parser.add_argument("--instruction-file", help="text file with the instruction (default: the paper's Fig. 11)")
    parser.add_argument("--cache-dir", default=None,
                        help="where labelled chunks are cached for resuming (default: the datasets cache)")
    parser.add_argument("--rows-per-cache-file", type=int, default=DEFAULT_ROWS_PER_CACHE_FILE,
                        help="rows per cached chunk (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output-dir")
    parser.add_argument("--push-to-hub", metavar="REPO", default=None, help="also upload the folder to this dataset repo")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo private")
    parser.add_argument("--device", default=None, help="torch device on one process (default: the first GPU, else CPU)")
    add_served_arguments(parser)


def _load(args):
    import datasets

    from .image_sources import is_dataset_folder, load_images

    path = Path(args.path)
    if path.is_dir() and not is_dataset_folder(path):
        return load_images(path), str(path)
    if not path.exists() and ("/" not in args.path or args.path.startswith((".", "/"))):
        raise SystemExit(f"{args.path}: no such file or folder")
    try:
        return datasets.load_dataset(args.path, args.config, split=args.split), args.path
    except ValueError as err:
        raise SystemExit(f"{args.path}: cannot read split {args.split!r} ({err})") from None


def run(args: argparse.Namespace) -> int:
    from .backends import ClassificationFailed, ServedClassifierError

    try:
        return _run(args)
    except ServedClassifierError as err:
        raise SystemExit(f"curate: error: {err}") from None
    except ClassificationFailed as err:
        raise SystemExit(f"curate: error: {err}. The chunks labelled so far are cached: run the same command "
                         "again to finish") from None


def _run(args: argparse.Namespace) -> int:
    from .backends import is_served_model, open_classifier, served_settings
    from .curation import count_rows, keep_rows, label_dataset, write_curated_folder
    from .scaleout import process_device, process_state

    state = process_state()
    instruction = Path(args.instruction_file).read_text(encoding="utf-8").strip() if args.instruction_file else None
    if Path(args.output_dir).exists() and not args.overwrite:
        raise SystemExit(f"{args.output_dir} already exists; pass --overwrite to replace it")
    with state.main_process_first():
        dataset, source = _load(args)
    classifier = open_classifier(
        args.model, device=process_device(state, args.device), batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens, instruction=instruction, return_scores=args.scores,
        **served_settings(args),
    )
    with classifier:
        labelled = label_dataset(
            dataset, classifier, image_column=args.image_column, column_prefix=args.column_prefix,
            cache_dir=args.cache_dir, rows_per_cache_file=args.rows_per_cache_file,
        )
    name = classifier.identity if is_served_model(args.model) else args.model  # a URL alone names no model
    if state.is_main_process:
        counts = count_rows(labelled, args.column_prefix)
        kept = keep_rows(labelled, args.keep, args.column_prefix)
        if len(kept) == 0:
            raise SystemExit(f"--keep {args.keep} kept none of the {counts['total']} image(s) ({counts['clean']} clean, "
                             f"{counts['flagged']} flagged, {counts['unparsed']} unparsed, {counts['errors']} "
                             f"unreadable); nothing written to {args.output_dir}")
        write_curated_folder(
            kept, args.output_dir, classifier_name=name, instruction=instruction, counts=counts,
            keep=args.keep, source=source, split=args.split, column_prefix=args.column_prefix,
            overwrite=args.overwrite,
        )
        print(f"{args.output_dir}: kept {len(kept)} of {counts['total']} image(s) (--keep {args.keep}): "
              f"{counts['clean']} clean, {counts['flagged']} flagged, {counts['unparsed']} unparsed, "
              f"{counts['errors']} unreadable")
        if args.push_to_hub:
            from .data.hub import push_dataset

            url = push_dataset(args.output_dir, args.push_to_hub, private=args.private,
                               commit_message=f"Curated with synartifact-hf ({args.keep} rows, classifier {name})")
            print(f"pushed to {url}")
    state.wait_for_everyone()
    return 0
