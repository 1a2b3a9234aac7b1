"""Benchmark: build SynArtifact-1K from a synthetic release of 1,310 images at the real sizes.

Writes a release with the real layout and id ranges (ids 0-1409 without 400-499; png / jpg / webp by
id range; 768x768 SD 2.1-v, 512x512 SD 1.x and ImageRewardDB, 1024x1024 DALL-E 3) and 1,045 / 265
images in train.txt / eval.txt, then runs the full ``build_dataset`` (validation with a decode of every
image, three configs, parquet, card, chart) once, and prints images/s and the peak RSS of the process.
Pixels are a gradient plus noise, so file sizes are close to real generator output (PNG ~1 MB at
768x768); each (size, format) is encoded once and copied with a unique trailer, which keeps writing
the release fast.

    python benchmarks/bench_build.py                 # all three configs, 1 process
    python benchmarks/bench_build.py --configs default --num-proc 2

Target: peak RSS < 1.5 GiB (the build streams; memory must not grow with the number of images).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

LIMIT_GIB = 1.5


def _kind(image_id: int) -> tuple[str, tuple[int, int], str, str]:
    """(ext, size, generator, prompt source) by id range, as in the release."""
    if image_id < 200:
        return "png", (768, 768), "Stable Diffusion 2.1-v", "COCO2017"
    if image_id < 400:
        return "jpg", (512, 512), "Stable Diffusion 1.5", "Drawbench"
    if image_id < 700:
        return "webp", (512, 512), "Stable Diffusion", "ImageRewardDB"
    if image_id < 1010:
        return "png", (768, 768), "Stable Diffusion 2.1-v", "Midjourney"
    if image_id < 1210:
        return "png", (1024, 1024), "DALLE 3", "Users"
    return "webp", (512, 512), "Stable Diffusion", "ImageRewardDB"


def _encoded(ext: str, size: tuple[int, int], rng) -> bytes:
    import numpy as np
    from PIL import Image

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)], axis=-1)
    noise = rng.normal(0, 6, size=(h, w, 3))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype("uint8"))
    buf = io.BytesIO()
    fmt = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[ext]
    image.save(buf, format=fmt, **({"compress_level": 1} if fmt == "PNG" else {"quality": 90}))
    return buf.getvalue()


def write_release(root: Path, seed: int = 0) -> tuple[int, int]:
    """Write the synthetic release; returns (images, bytes of images)."""
    import numpy as np

    rng, prng = np.random.default_rng(seed), random.Random(seed)
    ids = [i for i in range(1410) if not 400 <= i < 500]
    prng.shuffle(ids)
    test_ids = set(ids[:265])
    encoded: dict[tuple, bytes] = {}
    lists = {"train.txt": [], "eval.txt": []}
    total = 0
    for image_id in sorted(ids):
        ext, (w, h), generator, source = _kind(image_id)
        key = (ext, (w, h))
        if key not in encoded:
            encoded[key] = _encoded(ext, (w, h), rng)
        folder = f"sub_data_{image_id % 5}"
        stem = f"{image_id:09d}"
        rel = f"{folder}/images/{stem}.{ext}"
        (root / folder / "images").mkdir(parents=True, exist_ok=True)
        (root / folder / "annotation_json_artifacts_class").mkdir(parents=True, exist_ok=True)
        # A unique trailer (ignored by decoders after PNG IEND / JPEG EOI / the WEBP RIFF chunk) keeps
        # every file distinct, so parquet cannot deduplicate identical images as it would copies.
        data = encoded[key] + f"bench-{image_id:09d}".encode()
        (root / rel).write_bytes(data)
        total += len(data)
        boxes = []
        for _ in range(prng.choice([0, 0, 1, 1, 2, 3, 6])):
            x1, y1 = prng.randrange(0, w - 40), prng.randrange(0, h - 40)
            boxes.append(
                {
                    "rect_start": [x1, y1],
                    "rect_end": [prng.randrange(x1 + 10, w + 1), prng.randrange(y1 + 10, h + 1)],
                    "artifacts_caption": "synthetic caption",
                    "artifacts_class": str(prng.randrange(0, 13)) if prng.random() < 0.9 else prng.randrange(0, 13),
                }
            )
        annotation = {
            "Model Type": generator,
            "Dataset": source,
            "Prompt": f"synthetic prompt {image_id}",
            "Image path": rel,
            "Artifacts annotation": boxes,
            "Other artifacts caption": "Something else is off." if prng.random() < 0.1 else "None",
            "T2I misalignment caption": "None",
            "Aesthetics score": round(prng.randrange(1, 11) / 10, 1),
        }
        (root / folder / "annotation_json_artifacts_class" / f"{stem}.json").write_text(json.dumps(annotation))
        lists["eval.txt" if image_id in test_ids else "train.txt"].append(rel)
    for name, lines in lists.items():
        (root / name).write_text("".join(f"{line}\n" for line in lines))
    return len(ids), total


def _peak_rss_gib() -> float:
    # ru_maxrss is in KiB on Linux; children covers --num-proc workers.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return own / 2**20, children / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["default", "classification", "detection"])
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--workdir", default=None, help="where to write the synthetic release (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic release and the output")
    args = parser.parse_args(argv)

    from synartifact_hf.data import build_dataset

    work = Path(tempfile.mkdtemp(prefix="bench_build_", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        n_images, n_bytes = write_release(work / "data")
        t_write = time.perf_counter() - t0
        rss_before, _ = _peak_rss_gib()
        print(f"synthetic release: {n_images} images, {n_bytes / 2**20:.0f} MiB, written in {t_write:.1f}s")

        t0 = time.perf_counter()
        report = build_dataset(work / "data", work / "synartifact-1k", configs=args.configs, num_proc=args.num_proc)
        seconds = time.perf_counter() - t0
        own, children = _peak_rss_gib()
        out_bytes = sum(p.stat().st_size for p in (work / "synartifact-1k").rglob("*") if p.is_file())

        print(report.summary())
        print()
        print(f"configs                 : {', '.join(args.configs)} (num_proc={args.num_proc or 1})")
        print(f"build time              : {seconds:.1f} s")
        print(f"images/s (end to end)   : {n_images / seconds:.1f}  (release images per second, all configs)")
        print(f"image-rows/s            : {n_images * len(args.configs) / seconds:.1f}  (rows written, all configs)")
        print(f"output                  : {out_bytes / 2**20:.0f} MiB")
        print(f"peak RSS (this process) : {own:.2f} GiB (before the build: {rss_before:.2f} GiB)")
        if children:
            print(f"peak RSS (one worker)   : {children:.2f} GiB")
        peak = max(own, children)
        print(f"peak RSS / limit        : {peak:.2f} / {LIMIT_GIB} GiB = {peak / LIMIT_GIB:.2f}"
              f"  -> {'OK' if peak < LIMIT_GIB else 'OVER THE LIMIT'}")
        return 0 if peak < LIMIT_GIB else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
