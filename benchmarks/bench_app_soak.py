"""Soak test of the web app: does the server's memory stay flat over hundreds of requests?

Starts ``synartifact-hf app`` (tiny random LLaVA as classifier and detector, built locally) on
127.0.0.1 in a child process, uploads one bundled sample image, then sends bursts of concurrent
analyse requests through gradio's HTTP API (the queue answers some and refuses the rest, "Queue is
full"), sampling the server's resident memory (RSS) after every burst. The first bursts are warm-up
(BERTScore backbone, first-call costs, allocator pools); after them the RSS must stay flat.

Printed, all measured in this one run: RSS after warm-up and at the end, its growth per 100 answered
requests after warm-up (a least-squares slope over the post-warm-up samples), the peak, the size of
gradio's cache folder, and how many requests were answered / refused / failed. A figure of RSS against
answered requests goes to ``--figure`` (default ``bench_app_soak.png`` in the working folder).

Commands::

    .venv/bin/python benchmarks/bench_app_soak.py                          # 12 bursts of 30 (360 requests)
    .venv/bin/python benchmarks/bench_app_soak.py --bursts 20 --burst-size 40 --model CHECKPOINT
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 2**20


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two distinct xs)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0


def _figure(path: Path, answered: list[int], rss: list[float], warmup: int, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=110)
    ax = fig.subplots()
    ax.plot(answered, rss, marker="o", color="#264653")
    if warmup < len(answered):
        ax.axvspan(0, answered[warmup], color="#e9c46a", alpha=0.3, label="warm-up")
        ax.legend(loc="lower right")
    ax.set_xlabel("answered requests (cumulative)")
    ax.set_ylabel("server RSS after the burst (MiB)")
    ax.set_ylim(0, max(rss) * 1.15)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=12, help="bursts after the warm-up ones")
    parser.add_argument("--warmup-bursts", type=int, default=3)
    parser.add_argument("--burst-size", type=int, default=30, help="concurrent requests per burst")
    parser.add_argument("--queue-size", type=int, default=16)
    parser.add_argument("--model", default=None, help="checkpoint (default: a tiny random LLaVA built here)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--figure", default="bench_app_soak.png", help="where the RSS figure goes")
    args = parser.parse_args()

    from synartifact_hf.app.serving import burst, running_app, upload
    from synartifact_hf.data.embedded_sample import SAMPLE_DIR
    from synartifact_hf.tiny_models import build_tiny_llava

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "gradio-cache"
        os.environ["GRADIO_TEMP_DIR"] = str(cache)  # the child inherits it: its cache is measured alone
        model = args.model or str(build_tiny_llava(Path(tmp) / "tiny-llava", seed=0))
        argv = ["--model", model, "--detection-model", model, "--max-new-tokens", str(args.max_new_tokens),
                "--detection-max-new-tokens", str(args.max_new_tokens), "--queue-size", str(args.queue_size)]
        answered, refused, other, peak = [0], 0, [], 0
        with running_app(argv, Path(tmp) / "server.log", timeout=1200) as (url, proc):
            item = upload(url, SAMPLE_DIR / "sub_data_0/images/000000037.png")
            import psutil

            rss = [psutil.Process(proc.pid).memory_info().rss / MIB]
            for i in range(args.warmup_bursts + args.bursts):
                result = burst(url, proc.pid, [item], n=args.burst_size)
                answered.append(answered[-1] + result.answered)
                refused += result.refused
                other += result.other
                peak = max(peak, result.rss_peak)
                rss.append(result.rss_after / MIB)
                label = "warm-up" if i < args.warmup_bursts else "burst"
                print(f"  {label} {i + 1:2d}: answered {result.answered:2d}, refused {result.refused:2d}, "
                      f"RSS {rss[-1]:.0f} MiB", flush=True)
            cache_bytes = _folder_bytes(cache) if cache.is_dir() else 0
        # samples after warm-up: index warmup_bursts is the RSS right after the last warm-up burst
        w = args.warmup_bursts
        slope = _slope(answered[w:], rss[w:]) * 100
        total = args.burst_size * (args.warmup_bursts + args.bursts)
        _figure(Path(args.figure), answered, rss, w,
                f"synartifact-hf app: server RSS over {total} requests in bursts of {args.burst_size}")
    print(f"{total} requests in {args.warmup_bursts + args.bursts} bursts of {args.burst_size} (queue "
          f"{args.queue_size}): answered {answered[-1]}, refused (queue full) {refused}, other {len(other)}")
    print(f"  server RSS: start {rss[0]:.0f} MiB, after warm-up {rss[w]:.0f} MiB, end {rss[-1]:.0f} MiB, "
          f"peak {peak / MIB:.0f} MiB")
    print(f"  growth after warm-up: {rss[-1] - rss[w]:+.0f} MiB over {answered[-1] - answered[w]} answered "
          f"requests; slope {slope:+.2f} MiB per 100 answered requests")
    print(f"  gradio cache folder at the end: {cache_bytes / MIB:.1f} MiB")
    print(f"  figure: {args.figure}")
    for kind, message in other:
        print(f"  OTHER {kind}: {message}")
    return 1 if other else 0


if __name__ == "__main__":
    sys.exit(main())
