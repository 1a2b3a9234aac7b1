"""Where the labels of drawn boxes go: a small numbered tag on each box, and a legend under the image.

Class names and captions written next to their boxes collide as soon as boxes crowd (real annotations
have up to 18 boxes, often nested on one hand or face). So the picture carries only numbers: each box
gets a tag with its number, placed where it touches its own box and overlaps no other tag, and the
legend under the image says what each number is ("3. Distorted and deformed components: distorted
hand"). :func:`layout_box_labels` computes that geometry without drawing, so that it can be checked;
``drawing`` draws from it.

Tag placement considers the box's corners (outside above, inside, outside left / below / right), then
positions sliding along its four edges, and takes the first free one that touches the fewest other
boxes; boxes with the smallest area are placed first, as they have the fewest positions. Only when no position on a box's outline is free (dozens of boxes on one
spot) does the tag go to the nearest free place in the image, with ``attached=False`` (the drawing then
adds a leader line to the box).

>>> from PIL import ImageFont
>>> layout = layout_box_labels([(10, 10, 60, 60), (12, 12, 58, 58)], ["a", "b"], (100, 100),
...                            ImageFont.load_default(size=12), legend_top=100)
>>> [label.number for label in layout.labels], all(label.attached for label in layout.labels)
([1, 2], True)
>>> overlaps(layout.labels[0].tag, layout.labels[1].tag)
False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PlacedLabel", "BoxLabelLayout", "layout_box_labels", "overlaps", "touches", "wrap_text"]

Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 with exclusive ends: [x1, x2) x [y1, y2)


def overlaps(a: Rect, b: Rect) -> bool:
    """Whether two rectangles share any pixel."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def touches(tag: Rect, box: Rect) -> bool:
    """Whether ``tag`` overlaps ``box`` or sits right against its outline (no pixel between them)."""
    return overlaps(tag, (box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1))


@dataclass(frozen=True)
class PlacedLabel:
    """One box's label: its number, the tag on the image, and its legend entry under the image."""

    index: int  # position of the box in the input
    number: int  # what the tag shows (index + 1)
    box: Rect  # the box in image pixels (clipped to the image)
    tag: Rect  # the numbered tag, in image pixels
    attached: bool  # the tag touches its box (else the drawing adds a leader line)
    legend: Rect  # the legend entry, in canvas pixels (below the image)
    legend_lines: tuple[str, ...]  # its text, wrapped; the first line starts with "<number>. "


@dataclass(frozen=True)
class BoxLabelLayout:
    labels: list[PlacedLabel]
    legend_bottom: int  # first canvas row below the legend
    line_height: int
    swatch: int  # side of the colour square before each legend entry


def wrap_text(text: str, font, max_width: int) -> list[str]:
    """Greedy word wrap by rendered width; a word longer than a line is cut."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= max_width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while font.getlength(word) > max_width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and font.getlength(word[:cut]) > max_width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line or not lines:
        lines.append(line)
    return lines


def _clip(box: Sequence[float], width: int, height: int) -> Rect:
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, x2 = sorted((max(0, min(width - 1, x1)), max(0, min(width - 1, x2))))
    y1, y2 = sorted((max(0, min(height - 1, y1)), max(0, min(height - 1, y2))))
    return x1, y1, x2 + 1, y2 + 1  # the outline's last row/column is part of the box


def _outline_positions(box: Rect, w: int, h: int) -> list[tuple[int, int]]:
    x1, y1, x2, y2 = box
    corners = [
        (x1, y1 - h), (x1, y1), (x1 - w, y1), (x1, y2), (x1, y2 - h),
        (x2 - w, y1 - h), (x2 - w, y1), (x2, y1), (x2 - w, y2 - h), (x2 - w, y2), (x2, y2 - h), (x1 - w, y2 - h),
    ]
    slides = []
    step_x, step_y = max(1, w // 2), max(1, h // 2)
    for x in range(x1, max(x1, x2 - w) + 1, step_x):
        slides += [(x, y1 - h), (x, y1), (x, y2 - h), (x, y2)]
    for y in range(y1, max(y1, y2 - h) + 1, step_y):
        slides += [(x1 - w, y), (x1, y), (x2 - w, y), (x2, y)]
    return corners + slides


def _free(tag: Rect, placed: list[Rect], width: int, height: int) -> bool:
    inside = tag[0] >= 0 and tag[1] >= 0 and tag[2] <= width and tag[3] <= height
    return inside and not any(overlaps(tag, other) for other in placed)


def _nearest_free(box: Rect, w: int, h: int, placed: list[Rect], width: int, height: int) -> Rect | None:
    spots = [(x, y) for y in range(0, max(1, height - h + 1), max(1, h // 2))
             for x in range(0, max(1, width - w + 1), max(1, w // 2))]
    spots.sort(key=lambda p: (p[0] - box[0]) ** 2 + (p[1] - box[1]) ** 2)
    for x, y in spots:
        if _free((x, y, x + w, y + h), placed, width, height):
            return x, y, x + w, y + h
    return None


def layout_box_labels(
    boxes: Sequence[Sequence[float]],
    legend_texts: Sequence[str],
    image_size: tuple[int, int],
    font,
    *,
    legend_top: int,
    legend_width: int | None = None,
    padding: int = 2,
) -> BoxLabelLayout:
    """Tags on the image and legend entries under it for ``boxes`` ([x1, y1, x2, y2] pixels).

    Args:
        boxes: one per label, in the order of ``legend_texts`` (numbers follow this order).
        legend_texts: what the legend says about each box (e.g. ``"Localized blur: blurry"``).
        image_size: ``(width, height)`` of the image the boxes are on.
        font: a PIL font (measures the text).
        legend_top: canvas row where the legend starts (the image's height plus anything above it).
        legend_width: wrap width of the legend (default: the image width).
    """
    if len(boxes) != len(legend_texts):
        raise ValueError(f"{len(boxes)} boxes but {len(legend_texts)} legend texts")
    width, height = image_size
    legend_width = legend_width or width
    ascent, descent = font.getmetrics()
    line_height = ascent + descent + 2
    clipped = [_clip(box, width, height) for box in boxes]

    tags: dict[int, tuple[Rect, bool]] = {}
    placed: list[Rect] = []
    order = sorted(range(len(clipped)), key=lambda i: ((clipped[i][2] - clipped[i][0]) * (clipped[i][3] - clipped[i][1]), i))
    for i in order:
        box = clipped[i]
        w = int(font.getlength(str(i + 1))) + 2 * padding + 2
        h = ascent + descent + 2 * padding
        others = [other for k, other in enumerate(clipped) if k != i]
        free = [
            (x, y, x + w, y + h) for x, y in _outline_positions(box, w, h) if _free((x, y, x + w, y + h), placed, width, height)
        ]
        # Of the free spots, one that touches no other box's outline says best whose number it is.
        tag = min(free, key=lambda t: sum(touches(t, other) for other in others), default=None)
        if tag is None:
            tag = _nearest_free(box, w, h, placed, width, height)
        if tag is None:  # more tags than the image can hold: overlap rather than lose a number
            x, y = min(max(0, box[0]), max(0, width - w)), min(max(0, box[1]), max(0, height - h))
            tag = (x, y, x + w, y + h)
        tags[i] = (tag, touches(tag, box))
        placed.append(tag)

    swatch = ascent
    text_left = swatch + 8
    labels = []
    y = legend_top
    for i, (box, text) in enumerate(zip(clipped, legend_texts)):
        lines = tuple(wrap_text(f"{i + 1}. {text}", font, max(20, legend_width - text_left - 4)))
        entry_width = text_left + max(int(font.getlength(line)) for line in lines)
        legend = (4, y, 4 + entry_width, y + len(lines) * line_height)
        tag, attached = tags[i]
        labels.append(PlacedLabel(i, i + 1, box, tag, attached, legend, lines))
        y = legend[3] + 2
    return BoxLabelLayout(labels=labels, legend_bottom=y, line_height=line_height, swatch=swatch)
