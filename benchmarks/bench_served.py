"""Throughput of the classifier in-process vs behind ``transformers serve`` (the served classifier of
``synartifact_hf.backends``), all measured in this one run.

A LLaVA-1.5-shaped model with random weights (bench_pipeline.py's shapes) is saved to a temporary folder;
the same images (PNG-encoded for the server, as the client sends them) are classified

* in-process: ``open_classifier(folder, batch_size=B)`` at batch 1 and 8;
* served: ``transformers serve folder`` without and with ``--continuous-batching``, the client at
  concurrency 1, 4 and 16 (``open_classifier(url, concurrency=C)``).

Printed: images/s of each, and each served row's ratio to in-process batch 1 and batch 8. Greedy answers
of the two are the same text (tests/test_served.py checks it), so every row does the same work.

Targets (tiny shape, 2-core CPU): the served classifier's overhead (HTTP, PNG, base64) stays small:
served at concurrency 1 >= 0.5x in-process batch 1. On a GPU (``--device cuda --shape 7b``) continuous
batching at concurrency 16 should beat in-process batch 8.

    .venv/bin/python benchmarks/bench_served.py                           # tiny shape, CPU
    python benchmarks/bench_served.py --shape 7b --device cuda --images 64 --new-tokens 32
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_pipeline  # noqa: E402


def save_model(shape: str, folder: Path, device: str = "cpu") -> Path:
    """A random-weight LLaVA of ``bench_pipeline.SHAPES[shape]`` saved to ``folder`` (safetensors)."""
    from synartifact_hf.tiny_models import build_tiny_llava

    return build_tiny_llava(folder, seed=0, device=device, **bench_pipeline.SHAPES[shape])


def images_per_second(classifier, images) -> float:
    classifier.classify(images[:2])  # warm-up: first-call costs (compilation, caches, connections)
    start = time.perf_counter()
    classifier.classify(images)
    return len(images) / (time.perf_counter() - start)


def in_process_rates(folder: Path, images, batch_sizes, new_tokens: int, device: str | None) -> dict[int, float]:
    from synartifact_hf.backends import open_classifier

    rates = {}
    for batch in batch_sizes:
        with open_classifier(folder, device=device, batch_size=batch, max_new_tokens=new_tokens) as classifier:
            rates[batch] = images_per_second(classifier, images)
    return rates


def served_rates(folder: Path, images, concurrencies, new_tokens: int, log: Path, serve_args=()) -> dict[int, float]:
    """images/s through ``transformers serve folder SERVE_ARGS`` at each client concurrency."""
    from synartifact_hf.backends import open_classifier
    from synartifact_hf.backends.local_server import running_server

    rates = {}
    with running_server(folder, log, args=serve_args) as server:
        for concurrency in concurrencies:
            with open_classifier(server.url, concurrency=concurrency, max_new_tokens=new_tokens) as classifier:
                rates[concurrency] = images_per_second(classifier, images)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(bench_pipeline.SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu", help="device of the in-process model and the server")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=8, help="answer length cap")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    images = bench_pipeline.sample_images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(args.shape, Path(tmp) / "model", device=args.device)
        local = in_process_rates(folder, images, (1, 8), args.new_tokens, args.device)
        print(f"in-process: {', '.join(f'batch {b}: {r:.2f} images/s' for b, r in local.items())}")
        device_args = ["--device", args.device]
        served = {}
        for label, extra in (("transformers serve", []), ("transformers serve --continuous-batching", ["--continuous-batching"])):
            served[label] = served_rates(folder, images, args.concurrency, args.new_tokens, Path(tmp) / "serve.log",
                                         serve_args=[*device_args, *extra])
            print(f"{label}: {', '.join(f'concurrency {c}: {r:.2f} images/s' for c, r in served[label].items())}")
    print(f"\nbench_served: {args.shape} shape on {args.device}, {args.images} images, {args.new_tokens}-token answers\n")
    print("| classifier | setting | images/s | / in-process batch 1 | / in-process batch 8 |")
    print("|---|---|---:|---:|---:|")
    for batch, rate in local.items():
        print(f"| in-process | batch {batch} | {rate:.2f} | {rate / local[1]:.2f}x | {rate / local[8]:.2f}x |")
    for label, rates in served.items():
        for concurrency, rate in rates.items():
            print(f"| {label} | concurrency {concurrency} | {rate:.2f} | {rate / local[1]:.2f}x | {rate / local[8]:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
