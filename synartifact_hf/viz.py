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

from .atomic import atomic_path
from .box_labels import BoxLabelLayout, layout_box_labels, wrap_text
from .taxonomy import NAMES, get_class

__all__ = [
    "CLASS_COLORS",
    "draw_artifacts",
    "plot_class_distribution",
    "save_artifact_overlays",
    # evaluation figures
    "PREDICTED_COLOR",
    "REFERENCE_COLOR",
    "draw_box_comparison",
    "label_cooccurrence",
    "plot_label_cooccurrence",
    "plot_per_class_scores",
    "save_box_comparison_grid",
    # DDPO figures (paper Fig. 6 and Fig. 8)
    "plot_reward_curve",
    "save_before_after_grid",
]

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


def _save_figure(fig, path: str | Path) -> Path:
    """Lay out, write to a temporary name, rename into place (no half-written PNG), close the figure."""
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        with atomic_path(out, mode=None) as tmp:
            fig.savefig(tmp, format=out.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return out


def _save_image(image, path: str | Path) -> Path:
    """A PIL image written whole or not at all (format from the suffix; PNG without one)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, mode=None) as tmp:
        image.save(tmp, format=None if out.suffix else "PNG")
    return out


def _label_name(label) -> str:
    return get_class(label).name


def _text_color(fill: tuple[int, int, int]) -> tuple[int, int, int]:
    return (0, 0, 0) if 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] > 110 else (255, 255, 255)


def _draw_box_labels(draw, layout: BoxLabelLayout, colors: Sequence[tuple[int, int, int]], font, line_width: int):
    """Boxes, their numbered tags (a leader line when a tag had to leave its box) and the legend."""
    for label, color in zip(layout.labels, colors):
        x1, y1, x2, y2 = label.box
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=color, width=line_width)
    for label, color in zip(layout.labels, colors):
        tx1, ty1, tx2, ty2 = label.tag
        if not label.attached:
            x1, y1, x2, y2 = label.box
            cx, cy = (tx1 + tx2) // 2, (ty1 + ty2) // 2
            draw.line((cx, cy, min(max(cx, x1), x2 - 1), min(max(cy, y1), y2 - 1)), fill=color, width=line_width)
        draw.rectangle((tx1, ty1, tx2 - 1, ty2 - 1), fill=color)
        draw.text(((tx1 + tx2) / 2, (ty1 + ty2) / 2), str(label.number), fill=_text_color(color), font=font, anchor="mm")
        lx, ly = label.legend[0], label.legend[1]
        side = layout.swatch
        draw.rectangle((lx, ly + 2, lx + side, ly + 2 + side), fill=color)
        for k, line in enumerate(label.legend_lines):
            draw.text((lx + side + 8, ly + k * layout.line_height), line, fill=(0, 0, 0), font=font)


def _band_lines(lines: Sequence[str], font, width: int) -> list[str]:
    return [piece for line in lines for piece in wrap_text(line, font, max(20, width - 8))]


def draw_artifacts(
    image,
    artifacts: Iterable[Mapping],
    *,
    labels: Sequence | None = None,
    other_caption: str | None = None,
    t2i_caption: str | None = None,
    title: str | None = None,
    return_layout: bool = False,
):
    """Return a copy of ``image`` with each artifact's box and number drawn on it, and below the image
    a legend (number, class, caption) followed by the image-level text.

    Args:
        image: a PIL image.
        artifacts: mappings with ``bbox`` ([x1, y1, x2, y2] pixels), ``label`` (id or name) and optional
            ``caption`` (the ``artifacts`` column of the ``default`` config).
        labels: image-level labels (ids or names), written in the band below the image.
        other_caption / t2i_caption: written in the band below the image.
        title: first line of the band (e.g. the image id).
        return_layout: also return the :class:`~synartifact_hf.box_labels.BoxLabelLayout` drawn
            (tag and legend rectangles), as ``(picture, layout)``.
    """
    from PIL import Image, ImageDraw

    base = image.convert("RGB")
    width, height = base.size
    font_size = max(12, min(width, height) // 40)
    font = _font(font_size)
    artifacts = list(artifacts)
    classes = [get_class(artifact["label"]) for artifact in artifacts]
    texts = [f"{cls.name}: {a['caption']}" if a.get("caption") else cls.name for cls, a in zip(classes, artifacts)]

    line_h = font_size + 4
    head = _band_lines([title] if title else [], font, width)
    tail = []
    if labels is not None:
        tail.append("labels: " + ", ".join(_label_name(label) for label in labels))
    if other_caption:
        tail.append(f"other artifacts: {other_caption}")
    if t2i_caption:
        tail.append(f"T2I misalignment: {t2i_caption}")
    tail = _band_lines(tail, font, width)
    legend_top = height + 4 + len(head) * line_h
    layout = layout_box_labels([a["bbox"] for a in artifacts], texts, (width, height), font, legend_top=legend_top)
    bottom = layout.legend_bottom + len(tail) * line_h
    band = bottom + 4 - height if (head or tail or artifacts) else 0

    canvas = Image.new("RGB", (width, height + band), (255, 255, 255))
    canvas.paste(base, (0, 0))
    draw = ImageDraw.Draw(canvas)
    colors = [CLASS_COLORS[cls.id % len(CLASS_COLORS)] for cls in classes]
    _draw_box_labels(draw, layout, colors, font, max(2, min(width, height) // 200))
    for k, line in enumerate(head):
        draw.text((4, height + 4 + k * line_h), line, fill=(0, 0, 0), font=font)
    for k, line in enumerate(tail):
        draw.text((4, layout.legend_bottom + k * line_h), line, fill=(0, 0, 0), font=font)
    return (canvas, layout) if return_layout else canvas


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
    return _save_figure(fig, path)


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
        stem = str(row.get("image_id") or len(written))
        # image ids come from the dataset's rows (possibly someone else's folder): a file name only
        if Path(stem).name != stem or stem in (".", "..") or "\\" in stem:
            raise ValueError(f"image_id {stem!r} is not a plain file name; refusing to write outside {out_dir}")
        path = out_dir / f"{stem}.png"
        _save_image(picture, path)
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------
# Evaluation figures (classifier report, detection boxes).


def plot_per_class_scores(
    per_class: Mapping[str, Mapping[str, float]],
    path: str | Path,
    *,
    title: str = "Per-class scores",
    names: Sequence[str] = NAMES,
    paper: Mapping[str, Mapping[str, float]] | None = None,
) -> Path:
    """Grouped horizontal bars of precision, recall and F1 (in %) per class; writes a PNG to ``path``.

    Args:
        per_class: ``artifact_f1``'s ``per_class`` output (values 0-1, with ``support``).
        paper: optional ``{class name: {"f1": value in %}}`` drawn as black ticks for comparison.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keys = ("precision", "recall", "f1")
    fig, ax = plt.subplots(figsize=(8.5, 0.45 * len(names) + 1.4), dpi=100)
    bar_h = 0.8 / len(keys)
    for k, key in enumerate(keys):
        values = [100 * float(per_class.get(name, {}).get(key, 0.0)) for name in names]
        ys = [i + k * bar_h - 0.4 + bar_h / 2 for i in range(len(names))]
        ax.barh(ys, values, height=bar_h, label=key)
    if paper:
        for i, name in enumerate(names):
            if name in paper and "f1" in paper[name]:
                ax.plot([paper[name]["f1"]] * 2, [i - 0.4, i + 0.4], color="black", lw=2)
        ax.plot([], [], color="black", lw=2, label="paper F1")
    labels = [f"{name} (n={int(per_class.get(name, {}).get('support', 0))})" for name in names]
    ax.set_yticks(range(len(names)), labels=labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("%")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _save_figure(fig, path)


def label_cooccurrence(references: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]],
                       names: Sequence[str] = NAMES):
    """``counts[r][p]`` = number of examples whose reference has class ``r`` and prediction has class ``p``.

    The multi-label analogue of a confusion matrix: the diagonal holds the hits of each class; row ``r``
    off the diagonal shows what else was predicted for images of class ``r``. The extra last column
    counts examples of class ``r`` with an empty (unparseable) prediction.

    >>> label_cooccurrence([["Localized blur"]], [["Localized blur", "Abnormal texture"]],
    ...                    names=["Localized blur", "Abnormal texture"])
    [[1, 1, 0], [0, 0, 0]]
    """
    index = {name: i for i, name in enumerate(names)}
    counts = [[0] * (len(names) + 1) for _ in names]
    for ref, pred in zip(references, predictions):
        for r in ref:
            row = counts[index[get_class(r).name]]
            if not pred:
                row[-1] += 1
            for p in pred:
                row[index[get_class(p).name]] += 1
    return counts


def plot_label_cooccurrence(
    references: Sequence[Sequence[str]],
    predictions: Sequence[Sequence[str]],
    path: str | Path,
    *,
    title: str = "Reference class (rows) vs predicted classes (columns)",
    names: Sequence[str] = NAMES,
) -> Path:
    """Heat map of :func:`label_cooccurrence`, each row normalized by its class's number of examples
    (cell = share of images of that class whose prediction contains the column class); writes a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    counts = label_cooccurrence(references, predictions, names)
    support = [sum(1 for ref in references if name in {get_class(r).name for r in ref}) for name in names]
    shares = [[c / s if s else 0.0 for c in row] for row, s in zip(counts, support)]
    size = 0.5 * len(names) + 2.5
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=100)
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    columns = [*names, "(none parsed)"]
    ax.set_xticks(range(len(columns)), labels=columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), labels=[f"{n} (n={s})" for n, s in zip(names, support)], fontsize=7)
    for r, row in enumerate(counts):
        for c, value in enumerate(row):
            if value:
                ax.text(c, r, str(value), ha="center", va="center", fontsize=6,
                        color="white" if shares[r][c] > 0.6 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of the row's images")
    return _save_figure(fig, path)


PREDICTED_COLOR = (255, 215, 0)  # yellow, as the paper's Figure 7
REFERENCE_COLOR = (0, 200, 0)  # green


def draw_box_comparison(
    image,
    predicted: Iterable[Mapping],
    reference: Iterable[Mapping],
    *,
    title: str | None = None,
    return_layout: bool = False,
):
    """Paper Figure 7 style: predicted boxes in yellow, ground-truth boxes in green, on a copy of ``image``.

    Boxes are ``{"label": name, "bbox": [x1, y1, x2, y2]}`` in **pixels** of ``image`` (convert answer
    boxes, which are fractions of the padded square, with ``prompts.padded_to_pixel``). Each box gets a
    number on the image; the legend below says whether it is ground truth or predicted and its class.
    With ``return_layout`` the result is ``(picture, layout)`` (see :func:`draw_artifacts`).
    """
    from PIL import Image, ImageDraw

    base = image.convert("RGB")
    width, height = base.size
    font_size = max(10, min(width, height) // 32)
    font = _font(font_size)
    entries = [(box, "ground truth", REFERENCE_COLOR) for box in reference]
    entries += [(box, "predicted", PREDICTED_COLOR) for box in predicted]
    texts = [f"{kind}: {_label_name(box['label'])}" for box, kind, _ in entries]
    layout = layout_box_labels([box["bbox"] for box, _, _ in entries], texts, (width, height), font,
                               legend_top=height + 4)
    head = _band_lines([title] if title else [], font, width)
    band = layout.legend_bottom + len(head) * (font_size + 4) + 4 - height
    canvas = Image.new("RGB", (width, height + band), (255, 255, 255))
    canvas.paste(base, (0, 0))
    draw = ImageDraw.Draw(canvas)
    _draw_box_labels(draw, layout, [color for _, _, color in entries], font, max(2, min(width, height) // 150))
    for k, line in enumerate(head):
        draw.text((4, layout.legend_bottom + k * (font_size + 4)), line, fill=(0, 0, 0), font=font)
    return (canvas, layout) if return_layout else canvas


def save_box_comparison_grid(panels: Sequence, path: str | Path, *, columns: int = 4, cell: int = 320) -> Path:
    """Tile images from :func:`draw_box_comparison` (each scaled to ``cell`` pixels wide) into one PNG."""
    from PIL import Image

    if not panels:
        raise ValueError("save_box_comparison_grid needs at least one panel")
    scaled = []
    for panel in panels:
        ratio = cell / panel.size[0]
        scaled.append(panel.resize((cell, max(1, round(panel.size[1] * ratio)))))
    columns = max(1, min(columns, len(scaled)))
    rows = (len(scaled) + columns - 1) // columns
    row_heights = [max(p.size[1] for p in scaled[r * columns:(r + 1) * columns]) for r in range(rows)]
    grid = Image.new("RGB", (columns * cell + (columns - 1) * 4, sum(row_heights) + (rows - 1) * 4), (255, 255, 255))
    y = 0
    for r in range(rows):
        for c, panel in enumerate(scaled[r * columns:(r + 1) * columns]):
            grid.paste(panel, (c * (cell + 4), y))
        y += row_heights[r] + 4
    return _save_image(grid, path)


# ----------------------------------------------------------------------------------------------
# DDPO figures: reward per epoch (paper Fig. 8), fixed prompts and seeds before/after (paper Fig. 6).


def plot_reward_curve(
    history: Sequence[Mapping[str, float]],
    path: str | Path,
    *,
    title: str = "Artifact reward during DDPO",
    ylabel: str = "reward",
) -> Path:
    """Mean reward per epoch with a +-1 std band (``DDPOTrainer.history``); writes a PNG to ``path``.

    Each record needs ``epoch``, ``reward_mean`` and ``reward_std``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("plot_reward_curve needs at least one epoch of history")
    missing = [k for k in ("epoch", "reward_mean", "reward_std") if k not in history[0]]
    if missing:
        raise KeyError(f"history records need {missing} (DDPOTrainer.history has them)")
    epochs = [float(h["epoch"]) for h in history]
    mean = [float(h["reward_mean"]) for h in history]
    std = [float(h["reward_std"]) for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    ax.fill_between(epochs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                    alpha=0.25, label="±1 std")
    ax.plot(epochs, mean, marker="o", ms=3, label="mean")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save_figure(fig, path)


def save_before_after_grid(
    before: Sequence,
    after: Sequence,
    path: str | Path,
    *,
    prompts: Sequence[str] | None = None,
    rewards_before: Sequence[float] | None = None,
    rewards_after: Sequence[float] | None = None,
    cell: int = 256,
) -> Path:
    """Two rows of images, "before" over "after" (same prompt and seed per column), each column captioned
    with its prompt and, when given, the two rewards; writes a PNG to ``path``.

    Images are PIL images (any size; scaled to ``cell`` pixels square).
    """
    from PIL import Image, ImageDraw

    if not before or len(before) != len(after):
        raise ValueError(f"need the same non-zero number of before and after images; got {len(before)} and {len(after)}")
    n = len(before)
    for name, values in (("prompts", prompts), ("rewards_before", rewards_before), ("rewards_after", rewards_after)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} entries for {n} image pairs")
    font_size = max(10, cell // 18)
    font = _font(font_size)
    label_w = font_size * 4
    caption_h = 2 * (font_size + 4) + 4
    grid = Image.new("RGB", (label_w + n * (cell + 4), caption_h + 2 * (cell + 4)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for row, (label, images, rewards) in enumerate((("before", before, rewards_before), ("after", after, rewards_after))):
        y = caption_h + row * (cell + 4)
        draw.text((4, y + cell // 2 - font_size), label, fill=(0, 0, 0), font=font)
        for col, image in enumerate(images):
            x = label_w + col * (cell + 4)
            grid.paste(image.convert("RGB").resize((cell, cell)), (x, y))
            if rewards is not None:
                text = f"r={float(rewards[col]):.3f}"
                box = draw.textbbox((0, 0), text, font=font)
                draw.rectangle((x, y + cell - (box[3] - box[1]) - 6, x + box[2] - box[0] + 6, y + cell), fill=(0, 0, 0))
                draw.text((x + 3, y + cell - (box[3] - box[1]) - 4 - box[1]), text, fill=(255, 255, 255), font=font)
    if prompts is not None:
        for col, prompt in enumerate(prompts):
            x = label_w + col * (cell + 4)
            lines = textwrap.wrap(str(prompt), width=max(8, cell // (font_size // 2 + 1))) or [""]
            for i, line in enumerate(lines[:2]):
                draw.text((x, 4 + i * (font_size + 4)), _fit(draw, line, font, cell), fill=(0, 0, 0), font=font)
    return _save_image(grid, path)
