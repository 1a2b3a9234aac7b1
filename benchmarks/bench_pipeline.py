"""Throughput of ``pipeline("artifact-classification")`` and where its time goes.

A LLaVA-1.5-shaped model with random weights (the real instruction, a BPE tokenizer trained on it) is
built in memory; every answer is forced to the same length (``min_new_tokens = max_new_tokens``) so
that batch sizes and settings do the same work. Printed, all measured in this one run:

* images/s of the pipeline at each batch size, and the ratio batch N / batch 1;
* the split of one batch's time into image encoding (vision tower + projector), prefill of the
  prompt (the text model over image tokens + instruction) and decoding;
* the cost of ``return_scores=True`` (the 14-option continuation pass) relative to generation alone.

Targets on the 2-core CPU with the default small shape: batch 8 >= 1.5x the images/s of batch 1;
scores <= 1.3x the time of generation alone.

Commands::

    .venv/bin/python benchmarks/bench_pipeline.py                      # CPU, small shape, batches 1 and 8
    python benchmarks/bench_pipeline.py --shape 7b --device cuda --batch-sizes 1 8 32 --images 64
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

SHAPES = {
    # tiny_llava's defaults: 32 px tower (16 image tokens), 2-layer 64-wide Llama (gpu_check.py --smoke).
    "tiny": {},
    # 224 px CLIP-like tower with 4 layers, 8-layer 512-wide Llama.
    "small": dict(
        image_size=224, patch_size=14, vision_hidden_size=256, vision_intermediate_size=1024, vision_layers=4,
        vision_heads=4, hidden_size=512, intermediate_size=1376, num_layers=8, num_heads=8, num_kv_heads=8,
    ),
    # LLaVA-1.5-7B: CLIP ViT-L/14 at 336 px (576 image tokens) + Llama-2-7B (Vicuna), bf16.
    "7b": dict(
        image_size=336, patch_size=14, vision_hidden_size=1024, vision_intermediate_size=4096, vision_layers=24,
        vision_heads=16, hidden_size=4096, intermediate_size=11008, num_layers=32, num_heads=32, num_kv_heads=32,
        text_vocab_size=32064, max_position_embeddings=4096, dtype="bfloat16",
    ),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def sample_images(n: int) -> list[Image.Image]:
    rng = np.random.RandomState(0)
    return [Image.fromarray(rng.randint(0, 255, (300 + 7 * i, 400, 3), dtype=np.uint8)) for i in range(n)]


def _breakdown(model, inputs, new_tokens: int, device: str) -> tuple[float, float, float]:
    """Seconds for image encoding, encoding + prefill, and a whole generate() of one batch."""

    def encode():
        with torch.no_grad():
            model.model.get_image_features(pixel_values=inputs["pixel_values"], vision_feature_layer=-2,
                                           vision_feature_select_strategy="default")

    def prefill():
        with torch.no_grad():
            model(**inputs, use_cache=True, logits_to_keep=1)

    def generate():
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)

    return tuple(_timed(fn, device) for fn in (encode, prefill, generate))


def build_classifier(shape: str, device: str):
    """``(pipeline, model, processor, seconds)``: the artifact-classification pipeline over a random-weight
    LLaVA of ``SHAPES[shape]``, its weights created directly on ``device`` in the shape's dtype."""
    from transformers import pipeline

    import synartifact_hf  # noqa: F401  (registers the task)
    from synartifact_hf.tiny_models import tiny_llava

    spec = SHAPES[shape]
    dtype = getattr(torch, spec.get("dtype", "float32"))
    torch.set_default_dtype(dtype)  # build the weights directly in the target dtype
    start = time.perf_counter()
    try:
        model, processor = tiny_llava(seed=0, device=device, **spec)
    finally:
        torch.set_default_dtype(torch.float32)
    classifier = pipeline("artifact-classification", model=model, processor=processor, device=device)
    return classifier, model, processor, time.perf_counter() - start


def generation_kwargs(new_tokens: int) -> dict:
    """Every answer forced to ``new_tokens`` tokens, so that batch sizes and settings do the same work."""
    return {"max_new_tokens": new_tokens, "generate_kwargs": {"min_new_tokens": new_tokens}}


def throughput(classifier, images, batch_sizes, new_tokens: int, device: str) -> dict[int, float]:
    """images/s of the pipeline at each batch size (one timed call over all ``images`` each)."""
    gen = generation_kwargs(new_tokens)
    return {bs: len(images) / _timed(lambda bs=bs: classifier(images, batch_size=bs, **gen), device)
            for bs in batch_sizes}


def time_split(model, processor, images, batch_size: int, new_tokens: int, device: str) -> tuple[float, float, float]:
    """Seconds of one batch spent in image encoding, prefill (text model) and decoding."""
    from synartifact_hf.instructions import render_prompt

    batch = images[:batch_size]
    inputs = processor(images=[[im] for im in batch], text=[render_prompt(processor)] * len(batch),
                       return_tensors="pt", padding=True)
    t_enc, t_pre, t_gen = _breakdown(model, inputs.to(device, dtype=model.dtype), new_tokens, device)
    return t_enc, t_pre - t_enc, t_gen - t_pre


def scores_overhead(classifier, images, batch_size: int, new_tokens: int, device: str) -> tuple[float, float]:
    """Seconds for the pipeline with ``return_scores=True`` and without, over ``images``."""
    gen = generation_kwargs(new_tokens)
    plain = _timed(lambda: classifier(images, batch_size=batch_size, **gen), device)
    scored = _timed(lambda: classifier(images, batch_size=batch_size, return_scores=True, **gen), device)
    return scored, plain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--images", type=int, default=8, help="images per timed pipeline call")
    parser.add_argument("--new-tokens", type=int, default=24, help="answer length (forced)")
    args = parser.parse_args(argv)

    from synartifact_hf.instructions import render_prompt

    classifier, model, processor, seconds = build_classifier(args.shape, args.device)
    params = sum(p.numel() for p in model.parameters())
    print(f"shape={args.shape} device={args.device} dtype={model.dtype} params={params / 1e6:.1f}M "
          f"threads={torch.get_num_threads()} built in {seconds:.1f}s")
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name()}")

    gen = generation_kwargs(args.new_tokens)
    images = sample_images(args.images)
    prompt = render_prompt(processor)
    prompt_tokens = processor(images=[[images[0]]], text=[prompt], return_tensors="pt")["input_ids"].shape[1]
    vision = model.config.vision_config
    image_tokens = (vision.image_size // vision.patch_size) ** 2
    print(f"prompt: {prompt_tokens} tokens ({image_tokens} image + {prompt_tokens - image_tokens} text); "
          f"answer: {args.new_tokens} tokens; {args.images} images per call")

    classifier(images[:2], batch_size=2, return_scores=True, **gen)  # warm-up

    # 1. Throughput per batch size.
    rates = throughput(classifier, images, args.batch_sizes, args.new_tokens, args.device)
    for bs, rate in rates.items():
        print(f"batch {bs:3d}: {rate:7.2f} images/s  ({args.images / rate:.2f}s for {args.images})")
    base = args.batch_sizes[0]
    for bs in args.batch_sizes[1:]:
        print(f"  ratio batch {bs} / batch {base}: {rates[bs] / rates[base]:.2f}x"
              + ("  (target >= 1.5x)" if (base, bs) == (1, 8) and args.device == "cpu" else ""))

    # 2. Where the time goes, per batch size, on the model directly.
    print("time per batch (ms): image encoding | prefill (text model) | decoding | total generate")
    for bs in args.batch_sizes:
        t_enc, t_pre, t_dec = time_split(model, processor, images, bs, args.new_tokens, args.device)
        t_gen = t_enc + t_pre + t_dec
        print(f"  batch {bs:3d}: {1000 * t_enc:8.1f} | {1000 * t_pre:8.1f} | "
              f"{1000 * t_dec:8.1f} | {1000 * t_gen:8.1f}   "
              f"(shares {t_enc / t_gen:.0%} / {t_pre / t_gen:.0%} / {t_dec / t_gen:.0%})")

    # 3. Cost of the per-option scores on top of generation.
    bs = max(args.batch_sizes) if args.device != "cpu" else (8 if 8 in args.batch_sizes else args.batch_sizes[-1])
    scored, plain = scores_overhead(classifier, images, bs, args.new_tokens, args.device)
    print(f"return_scores at batch {bs}: {scored:.2f}s vs {plain:.2f}s generation alone -> {scored / plain:.2f}x"
          + ("  (target <= 1.3x)" if args.device == "cpu" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
