"""``synartifact-hf build-dataset RAW_DATA_DIR OUT_DIR``: the release -> a Hub-ready dataset folder."""

from __future__ import annotations

import argparse
import logging

from .builder import CONFIG_NAMES
from .label_rules import DEFAULT_LABEL_RULE, LABEL_RULES
from .release import DEFAULT_MAX_IMAGE_PIXELS, ReleaseError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("raw_data_dir", help="the release's data/ folder (train.txt, eval.txt, sub_data_N/)")
    parser.add_argument("out_dir", help="folder to create; name it synartifact-1k to load_dataset('synartifact-1k')")
    parser.add_argument(
        "--configs", nargs="+", choices=CONFIG_NAMES, default=list(CONFIG_NAMES), help="configs to write (first = default)"
    )
    parser.add_argument("--num-proc", type=int, default=None, help="processes for validation and generation")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if a previous build wrote it")
    parser.add_argument(
        "--skip-invalid", action="store_true", help="leave out bad images (listed in the report and the card)"
    )
    parser.add_argument(
        "--no-verify-images", action="store_true", help="read image headers only (skips the truncation check)"
    )
    parser.add_argument(
        "--max-image-pixels", type=int, default=DEFAULT_MAX_IMAGE_PIXELS, help="refuse larger images (bombs)"
    )
    parser.add_argument(
        "--label-rule",
        choices=LABEL_RULES,
        default=DEFAULT_LABEL_RULE,
        help="what makes labels: boxes + other-artifacts caption (default), or boxes only (the paper's counts)",
    )
    parser.add_argument("--max-shard-mb", type=int, default=500, help="image megabytes per parquet file")


def run(args: argparse.Namespace) -> int:
    from .export import build_dataset

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        report = build_dataset(
            args.raw_data_dir,
            args.out_dir,
            configs=args.configs,
            num_proc=args.num_proc,
            overwrite=args.overwrite,
            skip_invalid=args.skip_invalid,
            verify_images=not args.no_verify_images,
            max_image_pixels=args.max_image_pixels,
            max_shard_size=args.max_shard_mb * 2**20,
            label_rule=args.label_rule,
        )
    except (ReleaseError, FileExistsError, ValueError) as err:
        print(f"build-dataset: error: {err}")
        return 1
    print(report.summary())
    return 0
