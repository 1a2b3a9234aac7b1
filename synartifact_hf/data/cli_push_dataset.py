"""``synartifact-hf push-dataset OUT_DIR REPO_ID``: upload a built folder to a Hub dataset repo."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="a folder written by build-dataset")
    parser.add_argument("repo_id", help="dataset repository, e.g. your-name/synartifact-1k")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--commit-message", default="Upload SynArtifact-1K built by synartifact-hf")


def run(args: argparse.Namespace) -> int:
    from .hub import push_dataset

    try:
        url = push_dataset(
            args.out_dir, args.repo_id, private=args.private, token=args.token, commit_message=args.commit_message
        )
    except (ValueError, RuntimeError, ConnectionError) as err:
        print(f"push-dataset: error: {err}")
        return 1
    print(f"Uploaded {args.out_dir} to {url}")
    return 0
