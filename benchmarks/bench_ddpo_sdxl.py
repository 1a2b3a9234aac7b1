"""Benchmark: DDPO on a Stable-Diffusion-XL-shaped pipeline, gradient checkpointing off vs on, in one run.

The pipeline is built from configs with random weights (``sdxl_pipeline("sdxl-base")``: every
channel and layer count of SDXL base, 1024 px, about 3.5B parameters; nothing is downloaded), trained
as ``examples/recipes/ddpo_sdxl_lora.yaml`` trains the real one: LoRA on the UNet attention
projections, fp16 frozen weights, classifier-free guidance, the VAE upcast to float32 for decoding.
The reward is a colour statistic of the images, so the diffusion model's cost is what is measured.

Per setting, after one warm-up epoch: seconds per image of a DDPO epoch (sampling + training every
timestep, and each part) and the epoch's peak GPU memory above what was allocated before the pipeline
was built (``torch.cuda.max_memory_allocated``); then the ratios on / off. ``measure_sdxl_ddpo`` is
importable (``benchmarks/gpu_check.py`` can call it for its SDXL row).

    python benchmarks/bench_ddpo_sdxl.py                                   # GPU, SDXL base shape
    python benchmarks/bench_ddpo_sdxl.py --shape tiny --device cpu --mixed-precision no   # mechanics only
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def measure_sdxl_ddpo(
    gradient_checkpointing: bool,
    shape: str = "sdxl-base",
    resolution: int | None = None,
    mixed_precision: str = "fp16",
    sample_num_steps: int = 20,
    images: int = 2,
    train_batch_size: int = 1,
    device: str = "cuda",
) -> dict:
    """One warm-up epoch, then one timed DDPO epoch of ``images`` images (one sampling batch, LoRA,
    guidance 5) on a fresh random-weight SDXL pipeline of ``shape``. Returns ``s_per_image`` (the
    epoch), ``s_per_image_sampling`` / ``s_per_image_training`` (its parts) and ``peak_memory_gib``
    (None off CUDA; memory allocated before the build, e.g. a cached classifier, not counted) of the
    timed epoch, with the settings."""
    import torch
    from ddpo_timing import time_ddpo_epoch
    from diffusers import DDIMScheduler

    from synartifact_hf.tiny_diffusion import sdxl_pipeline

    gc.collect()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated() if cuda else 0
    pipe = sdxl_pipeline(shape, seed=0, device=device)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    m = time_ddpo_epoch(
        pipe, device, ["a photo of a cat", "a goldfish"], mixed_precision=mixed_precision,
        gradient_checkpointing=gradient_checkpointing, resolution=resolution, sample_num_steps=sample_num_steps,
        sample_batch_size=images, train_batch_size=train_batch_size,
        train_gradient_accumulation_steps=images // train_batch_size,
    )
    del pipe
    gc.collect()
    return {
        "shape": shape, "resolution": m["resolution"], "mixed_precision": mixed_precision, "lora": True,
        "gradient_checkpointing": gradient_checkpointing, "sample_num_steps": sample_num_steps, "images": images,
        "s_per_image": m["s_per_image"], "s_per_image_sampling": m["s_per_image_sampling"],
        "s_per_image_training": m["s_per_image_training"],
        "peak_memory_gib": None if m["peak_memory_bytes"] is None else (m["peak_memory_bytes"] - before) / 2**30,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="sdxl-base", help="SDXL_SHAPES key: sdxl-base or tiny")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--mixed-precision", default="fp16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    rows = [
        measure_sdxl_ddpo(on, shape=args.shape, resolution=args.resolution, mixed_precision=args.mixed_precision,
                          sample_num_steps=args.steps, images=args.images, device=args.device)
        for on in (False, True)
    ]
    for row in rows:
        memory = "n/a" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.2f} GiB"
        print(f"{row['shape']} {row['resolution']}px {row['mixed_precision']} LoRA, gradient checkpointing "
              f"{'on ' if row['gradient_checkpointing'] else 'off'}: {row['s_per_image']:.3f} s/image "
              f"(sampling {row['s_per_image_sampling']:.3f}, training {row['s_per_image_training']:.3f}), peak {memory}")
    off, on = rows
    print(f"checkpointing on/off: time x{on['s_per_image'] / off['s_per_image']:.2f}", end="")
    if off["peak_memory_gib"]:
        print(f", peak memory x{on['peak_memory_gib'] / off['peak_memory_gib']:.2f}")
    else:
        print()
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
