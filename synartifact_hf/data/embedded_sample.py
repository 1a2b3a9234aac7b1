"""The embedded sample: 18 annotations written for this project in the SynArtifact-1K release's exact
schema, with placeholder images, in the release layout.

The JSON files under ``sample/`` are NOT the release's (which states no license): prompts, boxes,
classes and captions were written for synartifact-hf, in the release's schema with every quirk of its
files (see ``sample/README.md``). The images are flat placeholders (a colour, the word PLACEHOLDER,
the id, the generator and the size) at the size each generator produces, picked so that every
annotated box fits.

>>> from synartifact_hf.data.embedded_sample import SAMPLE_DIR, SAMPLE_FILES
>>> (SAMPLE_DIR / "train.txt").is_file(), len(SAMPLE_FILES)
(True, 18)

Regenerate the placeholders (deterministic) with ``python -m synartifact_hf.data.embedded_sample``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

__all__ = ["SAMPLE_DIR", "SAMPLE_FILES", "build_sample_dataset", "placeholder_image", "write_placeholders"]

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"

# (split, path relative to data/) of the sample images, in split-list order.
SAMPLE_FILES: tuple[tuple[str, str], ...] = (
    ("train", "sub_data_0/images/000000012.png"),
    ("train", "sub_data_0/images/000000233.jpg"),
    ("train", "sub_data_0/images/000000961.png"),
    ("train", "sub_data_1/images/000000077.png"),
    ("train", "sub_data_1/images/000000588.webp"),
    ("train", "sub_data_1/images/000001134.png"),
    ("train", "sub_data_2/images/000000871.png"),
    ("train", "sub_data_3/images/000000719.png"),
    ("train", "sub_data_3/images/000000987.png"),
    ("train", "sub_data_4/images/000000826.png"),
    ("train", "sub_data_4/images/000001047.png"),
    ("train", "sub_data_4/images/000001388.webp"),
    ("test", "sub_data_0/images/000000037.png"),
    ("test", "sub_data_0/images/000000342.jpg"),
    ("test", "sub_data_1/images/000000268.jpg"),
    ("test", "sub_data_2/images/000000019.png"),
    ("test", "sub_data_2/images/000001176.png"),
    ("test", "sub_data_2/images/000001263.webp"),
)

# Native output size per generator (the generators' defaults); ImageRewardDB ("Stable Diffusion")
# images vary in size in the release, so sizes are bumped until every box fits (000000588 and
# 000001263 have boxes reaching past x=512, so they are 768x512).
_NATIVE_SIZE = {
    "Stable Diffusion 2.1-v": (768, 768),
    "Stable Diffusion 2.1": (768, 768),
    "Stable Diffusion v2": (768, 768),
    "Stable Diffusion 1.4": (512, 512),
    "Stable Diffusion 1.5": (512, 512),
    "Stable Diffusion v1": (512, 512),
    "Stable Diffusion": (512, 512),
    "DALLE 3": (1024, 1024),
}
_CANDIDATE_SIZES = ((512, 512), (768, 512), (512, 768), (768, 768), (1024, 1024))
_COLORS = {
    "Stable Diffusion 2.1-v": (92, 122, 153),
    "DALLE 3": (153, 110, 92),
}
_DEFAULT_COLOR = (110, 140, 105)


def placeholder_image(width: int, height: int, lines: list[str], color=_DEFAULT_COLOR):
    """A flat-colour PIL image with "PLACEHOLDER" and ``lines`` written on it."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), color)
    draw = ImageDraw.Draw(image)
    big = ImageFont.load_default(size=max(16, width // 10))
    small = ImageFont.load_default(size=max(12, width // 32))
    draw.text((width // 2, height // 2), "PLACEHOLDER", fill=(255, 255, 255), font=big, anchor="mm")
    y = height // 2 + width // 12
    for line in lines:
        draw.text((width // 2, y), line, fill=(235, 235, 235), font=small, anchor="mm")
        y += width // 24
    return image


def _size_for(generator: str, boxes: list[dict]) -> tuple[int, int]:
    need_w = max((b["rect_end"][0] for b in boxes), default=0)
    need_h = max((b["rect_end"][1] for b in boxes), default=0)
    native = _NATIVE_SIZE.get(generator, (512, 512))
    for size in (native, *_CANDIDATE_SIZES):
        if size[0] >= native[0] and size[1] >= native[1] and size[0] >= need_w and size[1] >= need_h:
            return size
    raise ValueError(f"no placeholder size fits boxes up to ({need_w}, {need_h})")


def write_placeholders(root: Path = SAMPLE_DIR) -> list[tuple[str, int, int]]:
    """(Re)write the placeholder images and split lists of the sample from its annotation JSONs."""
    written = []
    for _, file_name in SAMPLE_FILES:
        folder, _, image_name = file_name.split("/")
        stem, ext = image_name.rsplit(".", 1)
        meta = json.loads((root / folder / "annotation_json_artifacts_class" / f"{stem}.json").read_text())
        width, height = _size_for(meta["Model Type"], meta["Artifacts annotation"])
        image = placeholder_image(
            width,
            height,
            [f"{stem}  {width}x{height}", meta["Model Type"], "not a SynArtifact-1K image"],
            _COLORS.get(meta["Model Type"], _DEFAULT_COLOR),
        )
        buf = io.BytesIO()
        fmt = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[ext]
        options = {"JPEG": {"quality": 60}, "WEBP": {"quality": 60}, "PNG": {"optimize": True}}[fmt]
        image.save(buf, format=fmt, **options)
        out = root / file_name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(buf.getvalue())
        written.append((file_name, width, height))
    for split, list_name in (("train", "train.txt"), ("test", "eval.txt")):
        lines = [f for s, f in SAMPLE_FILES if s == split]
        (root / list_name).write_text("".join(f"{line}\n" for line in lines))
    return written


def build_sample_dataset(
    out_dir: str | Path,
    configs=None,
    *,
    overwrite: bool = False,
    num_proc: int | None = None,
    progress: bool = False,
) -> Path:
    """Build the Hub-ready dataset folder from the embedded sample; returns ``out_dir``.

    >>> import tempfile, datasets
    >>> out = build_sample_dataset(tempfile.mkdtemp() + "/synartifact-1k-sample", configs=["default"])
    >>> datasets.load_dataset(str(out))["train"].num_rows
    12
    """
    from .export import CONFIG_NAMES, build_dataset

    report = build_dataset(
        SAMPLE_DIR,
        out_dir,
        configs=CONFIG_NAMES if configs is None else configs,
        overwrite=overwrite,
        num_proc=num_proc,
        progress=progress,
    )
    return report.out_dir


if __name__ == "__main__":
    for name, w, h in write_placeholders():
        print(f"{name}: {w}x{h}")
