"""Scale-out: `classify` on 2 processes vs 1, and the merge of part files. All measured in this one run.

1. images/s of ``synartifact-hf classify`` under ``torchrun --nproc_per_node P`` (P = 1, 2; one torch
   thread per process) on a LLaVA-shaped model with random weights. Start-up and model loading are
   taken out by timing two input sizes per P: images/s = (N2 - N1) / (t(N2) - t(N1)). Target on the
   2-core machine: 2 processes >= 1.7x one process (needs the cores free: the load average is printed).
2. :func:`synartifact_hf.scaleout.merge_json_lines` on 8 part files holding 1,000,000 classify-like
   lines in interleaved order: seconds and, in a process that imports only what the merge needs, the RSS
   before and the peak during the merge (target: peak < 300 MB; the merge keeps hashes and offsets, never
   the records).

Commands::

    .venv/bin/python benchmarks/bench_scale.py                 # both parts
    .venv/bin/python benchmarks/bench_scale.py --skip-classify --lines 200000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _classify_seconds(model: Path, images: Path, nproc: int, work: Path, tokens: int) -> float:
    output = work / f"out-{nproc}-{len(list(images.iterdir()))}.jsonl"
    start = time.perf_counter()
    subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", str(nproc), "-m", "synartifact_hf.cli", "classify",
         str(images), "--model", str(model), "--output", str(output), "--max-new-tokens", str(tokens),
         "--batch-size", "4"],
        env=ENV, check=True, capture_output=True,
    )
    seconds = time.perf_counter() - start
    lines = output.read_text().count("\n")
    if lines != len(list(images.iterdir())):
        raise RuntimeError(f"{output}: {lines} lines for {len(list(images.iterdir()))} images")
    return seconds


def bench_classify(work: Path, sizes: tuple[int, int], tokens: int) -> dict:
    import numpy as np
    from PIL import Image

    from synartifact_hf.tiny_models import build_tiny_llava

    model = build_tiny_llava(work / "model", seed=0, image_size=224, patch_size=14, vision_hidden_size=256,
                             vision_intermediate_size=1024, vision_layers=4, vision_heads=4, hidden_size=512,
                             intermediate_size=1376, num_layers=8, num_heads=8, num_kv_heads=8)
    folders = {}
    for n in sizes:
        folder = work / f"images-{n}"
        folder.mkdir()
        for i in range(n):
            Image.fromarray(np.random.RandomState(i).randint(0, 255, (256, 256, 3), dtype=np.uint8)).save(
                folder / f"img{i:04d}.png")
        folders[n] = folder
    result = {}
    for nproc in (1, 2):
        seconds = {n: _classify_seconds(model, folders[n], nproc, work, tokens) for n in sizes}
        result[nproc] = (sizes[1] - sizes[0]) / (seconds[sizes[1]] - seconds[sizes[0]])
        print(f"  {nproc} process(es): {seconds[sizes[0]]:.1f} s for {sizes[0]} images, {seconds[sizes[1]]:.1f} s for "
              f"{sizes[1]} -> {result[nproc]:.2f} images/s", flush=True)
    return result


# Runs in a fresh interpreter that imports only what the merge needs (synartifact_hf.scaleout: json, array,
# hashlib; numpy inside). Memory is read from /proc/self/status, not getrusage: ru_maxrss survives fork + exec,
# so a child started by this process would report this process's peak (torch and all: ~500 MB). The peak is
# reset (clear_refs 5) just before the merge, so VmHWM afterwards is the merge's own peak.
_MERGE = """
import json, sys, time
from pathlib import Path
from synartifact_hf.scaleout import merge_json_lines

def status_mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

work, lines = Path(sys.argv[1]), int(sys.argv[2])
before = status_mb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
start = time.perf_counter()
n = merge_json_lines(work / "out.jsonl", sorted(work.glob("out.jsonl.part-*")),
                     (f"/data/generated/img{i:07d}.png" for i in range(lines)))
seconds = time.perf_counter() - start
print(json.dumps({"lines": n, "seconds": seconds, "rss_before_mb": before, "peak_rss_mb": status_mb("VmHWM")}))
"""


def bench_merge(work: Path, lines: int, parts: int = 8) -> dict:
    record = {"labels": ["Localized blur"], "has_artifacts": True, "other_artifacts": None,
              "generated_text": "1. Localized blur.", "parse_issues": []}
    handles = [(work / f"out.jsonl.part-{p:05d}").open("w") for p in range(parts)]
    for i in range(lines):  # round-robin: every part is out of input order relative to the others
        handles[i % parts].write(json.dumps({"image": f"/data/generated/img{i:07d}.png", **record}) + "\n")
    for handle in handles:
        handle.close()
    size = sum(p.stat().st_size for p in work.glob("out.jsonl.part-*"))
    proc = subprocess.run([sys.executable, "-c", _MERGE, str(work), str(lines)], env=ENV, check=True,
                          capture_output=True, text=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    merged = (work / "out.jsonl").open()
    first = [json.loads(next(merged))["image"] for _ in range(3)]
    merged.close()
    assert result["lines"] == lines and first == [f"/data/generated/img{i:07d}.png" for i in range(3)], first
    result["input_mb"] = size / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=(8, 40), help="two image counts (default: 8 40)")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--skip-classify", action="store_true")
    parser.add_argument("--skip-merge", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_classify:
            print("classify, torchrun --nproc_per_node P, 1 torch thread per process:", flush=True)
            ips = bench_classify(work, tuple(args.sizes), args.max_new_tokens)
            print(f"  speed-up 2 processes / 1 process: {ips[2] / ips[1]:.2f}x (target >= 1.7x); "
                  f"load average now: {os.getloadavg()[0]:.2f}", flush=True)
        if not args.skip_merge:
            (work / "merge").mkdir()
            m = bench_merge(work / "merge", args.lines)
            print(f"merge of {m['lines']:,} lines from 8 part files ({m['input_mb']:.0f} MB): {m['seconds']:.1f} s "
                  f"({m['lines'] / m['seconds']:,.0f} lines/s); the merging process (imports only the merge): "
                  f"{m['rss_before_mb']:.0f} MB before (interpreter and imports), peak "
                  f"{m['peak_rss_mb']:.0f} MB during the merge: +{m['peak_rss_mb'] - m['rss_before_mb']:.0f} MB "
                  f"for the merge (target < 300 MB peak)")


if __name__ == "__main__":
    main()
