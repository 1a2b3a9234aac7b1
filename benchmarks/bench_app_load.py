"""A burst of concurrent requests against the web app: answered or refused, latency, server memory.

Starts ``synartifact-hf app`` (tiny random LLaVA as classifier and detector, built locally) on
127.0.0.1 in a child process, uploads one bundled sample image, then sends N analyse requests at once
through gradio's HTTP API. Printed, all measured in this one run: how many were answered and how
many refused ("Queue is full", HTTP 503), anything else (must be 0), answer latency p50/p95, and the
server's resident memory before, at its peak during the burst and after (ratio peak / before).

Commands::

    .venv/bin/python benchmarks/bench_app_load.py                       # 50 requests, queue 16
    .venv/bin/python benchmarks/bench_app_load.py --requests 100 --queue-size 32 --model CHECKPOINT
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from synartifact_hf.app.serving import burst, running_app, upload
    from synartifact_hf.app.ui import QUEUE_SIZE
    from synartifact_hf.data.embedded_sample import SAMPLE_DIR
    from synartifact_hf.tiny_models import build_tiny_llava

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--queue-size", type=int, default=QUEUE_SIZE)
    parser.add_argument("--model", default=None, help="checkpoint (default: a tiny random LLaVA built here)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_llava(Path(tmp) / "tiny-llava", seed=0))
        argv = ["--model", model, "--detection-model", model, "--max-new-tokens", str(args.max_new_tokens),
                "--detection-max-new-tokens", str(args.max_new_tokens), "--queue-size", str(args.queue_size)]
        with running_app(argv, Path(tmp) / "server.log") as (url, proc):
            item = upload(url, SAMPLE_DIR / "sub_data_0/images/000000037.png")
            burst(url, proc.pid, [item], n=2)  # warm-up: BERTScore backbone loaded, first-call costs paid
            result = burst(url, proc.pid, [item], n=args.requests)
    mib = 2**20
    latencies = sorted(result.latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else float("nan")
    print(f"{args.requests} concurrent requests, queue size {args.queue_size}, one model call at a time, "
          f"{result.seconds:.1f}s in all")
    print(f"  answered {result.answered}, refused (queue full) {result.refused}, other {len(result.other)}")
    if latencies:
        print(f"  answer latency p50 {statistics.median(latencies):.2f}s, p95 {p95:.2f}s")
    print(f"  server RSS: before {result.rss_before / mib:.0f} MiB, peak {result.rss_peak / mib:.0f} MiB, "
          f"after {result.rss_after / mib:.0f} MiB (peak / before = {result.rss_peak / result.rss_before:.2f})")
    for kind, message in result.other:
        print(f"  OTHER {kind}: {message}")
    return 1 if result.other else 0


if __name__ == "__main__":
    sys.exit(main())
