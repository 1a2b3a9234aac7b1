"""Pictures for people: artifact boxes drawn on images, class histograms.

Drawing uses PIL only (fast, no display); charts use matplotlib's non-interactive Agg backend, imported
only when a chart is drawn.

>>> from PIL import Image
>>> image = Image.new("RGB", (256, 192), (90, 90, 90))
>>> out = draw_artifacts(image, [{"bbox": [10, 20, 120, 90], "label": "Localized blur", "caption": "blurry"}],
...                      other_caption="A shoe on the head.")
>>> out.size[0] == 256 and out.size[1] > 192   # captions go into a band below the image
True
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .taxonomy import NAMES, get_class

__all__ = ["CLASS_COLORS", "draw_artifacts", "plot_class_distribution", "save_artifact_overlays"]

# One colour per class id (tab20-like, readable on light and dark images).
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (128, 128, 128),
)


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fit(draw, text: str, font, max_width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``max_width`` pixels."""
    if draw.textlength(text, font=font) <= max_width:
        return text
    while len(text) > 1 and draw.textlength(text + "...", font=font) > max_width:
        text = text[: max(1, int(len(text) * 0.9))]
    return text.rstrip() + "..."


def _label_name(label) -> str:
    return get_class(label).name


def draw_artifacts(
    image,
    artifacts: Iterable[Mapping],
    *,
    labels: Sequence | None = None,
    other_caption: str | None = None,
    t2i_caption: str | None = None,
    title: str | None = None,
):
    """Return a copy of ``image`` with each artifact's box, class name and caption drawn on it.

    Args:
        image: a PIL image.
        artifacts: mappings with ``bbox`` ([x1, y1, x2, y2] pixels), ``label`` (id or name) and optional
            ``caption`` (the ``artifacts`` column of the ``default`` config).
        labels: image-level labels (ids or names), written in the band below the image.
        other_caption / t2i_caption: written in the band below the image.
        title: first line of the band (e.g. the image id).
    """
    from PIL import ImageDraw

    base = image.convert("RGB")
    width, height = base.size
    font_size = max(12, min(width, height) // 40)
    font = _font(font_size)

    lines = []
    if title:
        lines.append(title)
    if labels is not None:
        lines.append("labels: " + ", ".join(_label_name(label) for label in labels))
    if other_caption:
        lines.append(f"other artifacts: {other_caption}")
    if t2i_caption:
        lines.append(f"T2I misalignment: {t2i_caption}")
    chars = max(20, int(width / (font_size * 0.55)))
    wrapped = [piece for line in lines for piece in textwrap.wrap(line, chars) or [""]]
    band = (len(wrapped) * (font_size + 4) + 8) if wrapped else 0

    from PIL import Image

    canvas = Image.new("RGB", (width, height + band), (255, 255, 255))
    canvas.paste(base, (0, 0))
    draw = ImageDraw.Draw(canvas)
    line_width = max(2, min(width, height) // 200)
    for artifact in artifacts:
        x1, y1, x2, y2 = (int(v) for v in artifact["bbox"])
        cls = get_class(artifact["label"])
        color = CLASS_COLORS[cls.id % len(CLASS_COLORS)]
        draw.rectangle((x1, y1, x2, y2), outline=color, width=line_width)
        caption = artifact.get("caption")
        text = f"{cls.name}: {caption}" if caption else cls.name
        text = _fit(draw, text, font, width - 6)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left, bottom - top + 4
        ty = y1 - text_h if y1 - text_h >= 0 else min(y1 + line_width, height - text_h)
        tx = max(0, min(x1, width - text_w))
        draw.rectangle((tx, ty, tx + text_w + 4, ty + text_h), fill=color)
        draw.text((tx + 2, ty + 1 - top), text, fill=(0, 0, 0), font=font)
    y = height + 4
    for line in wrapped:
        draw.text((4, y), line, fill=(0, 0, 0), font=font)
        y += font_size + 4
    return canvas


def plot_class_distribution(
    counts: Mapping[str, Mapping[str, int]],
    path: str | Path,
    *,
    title: str = "Images per class",
    names: Sequence[str] = NAMES,
    images: Mapping[str, int] | None = None,
) -> Path:
    """Horizontal bar chart of images per class, one bar group per split; writes a PNG to ``path``.

    Args:
        counts: ``{split: {class name: number of images}}``; missing classes count 0.
        path: output PNG.
        images: ``{split: number of images}`` for the legend (an image can carry several classes).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    splits = list(counts)
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(names) + 1.2), dpi=100)
    bar_h = 0.8 / max(1, len(splits))
    for s, split in enumerate(splits):
        values = [counts[split].get(name, 0) for name in names]
        ys = [i + s * bar_h - 0.4 + bar_h / 2 for i in range(len(names))]
        bars = ax.barh(ys, values, height=bar_h, label=f"{split} ({images[split]} images)" if images else split)
        ax.bar_label(bars, fontsize=7, padding=2)
    ax.set_yticks(range(len(names)), labels=list(names), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_artifact_overlays(
    rows: Iterable[Mapping],
    out_dir: str | Path,
    *,
    names: Sequence[str] = NAMES,
) -> list[Path]:
    """Draw every row of the ``default`` config (image, artifacts, labels, captions) into
    ``out_dir/<image_id>.png``, like the release's ``annotation_image/``. Returns the written paths.

    Label fields may be class ids (as ``datasets`` returns ``ClassLabel`` values) or names.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for row in rows:
        artifacts = [
            {**a, "label": names[a["label"]] if isinstance(a["label"], int) else a["label"]} for a in row["artifacts"]
        ]
        labels = [names[lab] if isinstance(lab, int) else lab for lab in row.get("labels", [])]
        picture = draw_artifacts(
            row["image"],
            artifacts,
            labels=labels,
            other_caption=row.get("other_artifacts_caption"),
            t2i_caption=row.get("t2i_misalignment_caption"),
            title=f"{row.get('image_id', '')}  {row.get('generator', '')}  (prompt: {row.get('prompt', '')})",
        )
        path = out_dir / f"{row.get('image_id') or len(written)}.png"
        picture.save(path)
        written.append(path)
    return written
