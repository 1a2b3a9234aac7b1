"""Flow-GRPO epoch cost on the tiny SD3 (CPU) or at SD3.5-Medium shape (GPU): full SDE (every step stored and
trained: plain Flow-GRPO) against a 2-step SDE window (Flow-GRPO-Fast), each split into sampling and
training seconds per image, with the ratios measured in this one run.

    python benchmarks/bench_flow_grpo.py                    # tiny SD3, CPU (seconds)
    python benchmarks/bench_flow_grpo.py --steps 10 --group 4
    python benchmarks/bench_flow_grpo.py --shape sd35-medium --device cuda --resolution 512 --mixed-precision bf16

Random weights built from configs (synartifact_hf.tiny_diffusion.sd3_pipeline), nothing downloaded; the
reward is a colour statistic (benchmarks/ddpo_timing.py), so the numbers are the diffusion costs alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # ddpo_timing, beside this file


def measure(shape: str, device: str, steps: int, group: int, window: int, resolution: int | None,
            mixed_precision: str, seed: int = 0) -> dict:
    """One warm-up and one timed Flow-GRPO epoch of ``group`` images (one prompt) with an SDE window of
    ``window`` steps (0: every step)."""
    from ddpo_timing import time_rl_epoch

    from synartifact_hf.tiny_diffusion import sd3_pipeline

    pipe = sd3_pipeline(shape, seed=seed, device=device)
    pipe.set_progress_bar_config(disable=True)
    return time_rl_epoch(
        "flow_grpo", pipe, device, ["a goldfish"], sample_num_steps=steps, sample_batch_size=group,
        num_images_per_prompt=group, train_batch_size=group, sde_window_size=window, resolution=resolution,
        mixed_precision=mixed_precision, seed=seed,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny", help="tiny | sd35-medium (SD3_SHAPES)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps (the reference's SD3.5 setting: 10)")
    parser.add_argument("--group", type=int, default=4, help="images per prompt = images per epoch here")
    parser.add_argument("--window", type=int, default=2, help="SDE window of the fast run")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--mixed-precision", default="no")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        import torch

        torch.set_num_threads(1)  # tiny kernels; a shared CPU makes more threads slower
    runs = {name: measure(args.shape, args.device, args.steps, args.group, window, args.resolution, args.mixed_precision)
            for name, window in (("full", 0), ("window", args.window))}
    full, fast = runs["full"], runs["window"]
    print(f"Flow-GRPO epoch, {args.shape} SD3 at {full['resolution']} px, {args.steps} steps, group {args.group}, "
          f"{args.device}:")
    print("| run | SDE steps trained | sampling s/image | training s/image | epoch s/image | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in runs.items():
        peak = "-" if m["peak_memory_bytes"] is None else f"{m['peak_memory_bytes'] / 2**30:.2f}"
        print(f"| {name} | {m['num_train_timesteps']} | {m['s_per_image_sampling']:.4f} | {m['s_per_image_training']:.4f} "
              f"| {m['s_per_image']:.4f} | {peak} |")
    ratios = {
        "epoch: full / window": full["s_per_image"] / fast["s_per_image"],
        "training: full / window": full["s_per_image_training"] / fast["s_per_image_training"],
        "sampling: full / window": full["s_per_image_sampling"] / fast["s_per_image_sampling"],
        "full run: training / sampling": full["s_per_image_training"] / full["s_per_image_sampling"],
        "window run: training / sampling": fast["s_per_image_training"] / fast["s_per_image_sampling"],
    }
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    return {"runs": runs, "ratios": ratios}


if __name__ == "__main__":
    main()
