"""``synartifact-hf install-metrics``: make ``evaluate.load("artifact_f1")`` / ``("artifact_iou")`` work by
bare name (our modules copied into evaluate's module cache; see :mod:`synartifact_hf.metrics.evaluate_cache`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="metrics to install (default: all: artifact_f1 artifact_iou)")
    parser.add_argument("--uninstall", action="store_true", help="remove our copies from evaluate's cache instead")
    parser.add_argument("--modules-cache", default=None,
                        help="evaluate's module cache (default: evaluate's own: $HF_MODULES_CACHE or $HF_HOME/modules)")


def run(args: argparse.Namespace) -> int:
    from .evaluate_cache import install, uninstall

    action = uninstall if args.uninstall else install
    try:
        results = action(args.names or None, modules_cache=args.modules_cache)
    except KeyError as err:
        print(f"install-metrics: error: {err.args[0]}")
        return 2
    for result in results:
        print(result)
    # A skipped name means evaluate.load(name) will not give our module: say so in the exit status.
    return 1 if any(r.status == "skipped" for r in results) else 0
