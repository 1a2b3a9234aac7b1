"""Box overlays label every box with a number that collides with no other, and a legend says what each
number is: checked on the geometry the drawing functions return and on the pixels they draw."""

from __future__ import annotations

import json

from PIL import Image, ImageFont

from synartifact_hf.box_labels import layout_box_labels, overlaps, touches
from synartifact_hf.drawing import (
    CLASS_COLORS,
    PREDICTED_COLOR,
    REFERENCE_COLOR,
    draw_artifacts,
    draw_box_comparison,
)
from synartifact_hf.taxonomy import NAMES


def _check(layout, n_boxes: int, image_size: tuple[int, int], *, attached: bool = True) -> None:
    width, height = image_size
    assert [label.number for label in layout.labels] == list(range(1, n_boxes + 1))  # every box, once
    for a, label in enumerate(layout.labels):
        x1, y1, x2, y2 = label.tag
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height, label
        if attached:
            assert label.attached and touches(label.tag, label.box), label
        assert label.legend[1] >= height  # the legend is under the image
        assert label.legend_lines[0].startswith(f"{label.number}. ")
        for other in layout.labels[a + 1 :]:
            assert not overlaps(label.tag, other.tag), (label.tag, other.tag)
            assert not overlaps(label.legend, other.legend)


def test_seven_nested_boxes_get_separate_numbers_and_a_legend():
    image = Image.new("RGB", (400, 300), (40, 40, 40))
    artifacts = [
        {"bbox": [100 + 4 * i, 100 + 3 * i, 300 - 2 * i, 260 - i], "label": i, "caption": f"caption {i}"}
        for i in range(7)
    ]
    picture, layout = draw_artifacts(image, artifacts, labels=[0, 1], title="crowded", return_layout=True)
    _check(layout, 7, image.size)
    assert picture.size[1] >= layout.legend_bottom
    for label, artifact in zip(layout.labels, artifacts):
        # the legend names the class and the caption; the drawn tag is filled with the box's class colour
        assert " ".join(label.legend_lines) == f"{label.number}. {NAMES[artifact['label']]}: {artifact['caption']}"
        x1, y1, x2, y2 = label.tag
        assert picture.getpixel((x1, y1)) == picture.getpixel((x2 - 1, y2 - 1)) == CLASS_COLORS[artifact["label"]]


def test_identical_and_edge_boxes_still_get_one_tag_each():
    # five copies of one box plus boxes flush with every image edge: tags must go around them
    boxes = [[60, 60, 140, 120]] * 5 + [[0, 0, 200, 30], [0, 0, 30, 150], [170, 0, 200, 150], [0, 120, 200, 150]]
    artifacts = [{"bbox": b, "label": 2, "caption": None} for b in boxes]
    picture, layout = draw_artifacts(Image.new("RGB", (200, 150)), artifacts, return_layout=True)
    _check(layout, len(boxes), (200, 150))


def test_more_boxes_than_room_on_their_outline():
    # 40 copies of one small box: the outline cannot hold 40 tags, so some move off it (with a leader
    # line) but none overlaps another and none is lost
    font = ImageFont.load_default(size=12)
    layout = layout_box_labels([[50, 50, 70, 70]] * 40, ["x"] * 40, (320, 320), font, legend_top=320)
    _check(layout, 40, (320, 320), attached=False)
    assert any(not label.attached for label in layout.labels)


def test_box_comparison_numbers_ground_truth_and_predictions():
    reference = [{"label": NAMES[2], "bbox": [52, 48, 198, 205]}, {"label": NAMES[4], "bbox": [60, 60, 120, 120]}]
    predicted = [{"label": NAMES[2], "bbox": [50, 50, 200, 200]}, {"label": NAMES[3], "bbox": [55, 52, 190, 210]},
                 {"label": NAMES[4], "bbox": [58, 61, 122, 118]}, {"label": NAMES[0], "bbox": [-20, 300, 500, 400]}]
    picture, layout = draw_box_comparison(Image.new("RGB", (336, 336)), predicted, reference, title="id",
                                          return_layout=True)
    _check(layout, 6, (336, 336))
    kinds = [label.legend_lines[0].split(" ", 1)[1].split(":")[0] for label in layout.labels]
    assert kinds == ["ground truth"] * 2 + ["predicted"] * 4
    for label, color in zip(layout.labels, [REFERENCE_COLOR] * 2 + [PREDICTED_COLOR] * 4):
        assert picture.getpixel(label.tag[:2]) == color
    assert layout.labels[-1].box == (0, 300, 336, 336)  # a prediction past the edges is clipped to the image


def test_every_real_annotation_lays_out_without_collisions(release_annotations):
    font = ImageFont.load_default(size=19)  # draw_artifacts' size on a 768-pixel image
    checked = 0
    for path in sorted(release_annotations.glob("sub_data_*/annotation_json_artifacts_class/*.json")):
        boxes = [[*b["rect_start"], *b["rect_end"]] for b in json.loads(path.read_text())["Artifacts annotation"]]
        if len(boxes) < 2:
            continue
        size = (max(768, *(b[2] for b in boxes)), max(768, *(b[3] for b in boxes)))
        _check(layout_box_labels(boxes, ["x"] * len(boxes), size, font, legend_top=size[1]), len(boxes), size)
        checked += 1
    assert checked > 300
