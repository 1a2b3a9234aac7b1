"""``synartifact-hf visualize DATASET_DIR OUT_DIR``: draw boxes, class names and captions onto images of
a built dataset (its ``default`` config), one PNG per image, plus the class histogram."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset_dir", help="a folder written by build-dataset (or any folder load_dataset reads)")
    parser.add_argument("out_dir", help="folder for the PNG files")
    parser.add_argument("--split", default="test", help="split to draw (default: test)")
    parser.add_argument("--num", type=int, default=8, help="number of images (default 8; 0 = all)")
    parser.add_argument("--image-ids", nargs="+", default=None, help="draw these image ids instead")
    parser.add_argument("--only-artifacts", action="store_true", help="skip images labelled 'No artifacts'")


def run(args: argparse.Namespace) -> int:
    from .dataset_figures import visualize_dataset

    try:
        written = visualize_dataset(
            args.dataset_dir,
            args.out_dir,
            split=args.split,
            num=args.num,
            image_ids=args.image_ids,
            only_artifacts=args.only_artifacts,
        )
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"visualize: error: {err}")
        return 1
    for path in written:
        print(path)
    return 0
