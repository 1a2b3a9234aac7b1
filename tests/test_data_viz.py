"""visualize (overlays + histogram PNGs), drawing helpers and the card renderer."""

from __future__ import annotations

import pytest
from PIL import Image

from synartifact_hf import cards
from synartifact_hf.cli import main
from synartifact_hf.data import build_sample_dataset
from synartifact_hf.drawing import CLASS_COLORS, draw_artifacts, plot_class_distribution
from synartifact_hf.taxonomy import NAMES


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_sample_dataset(tmp_path_factory.mktemp("viz") / "synartifact-1k-viz", configs=["default"])


def test_visualize_cli_writes_overlay_pngs(built, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["visualize", str(built), str(out), "--split", "train", "--num", "3", "--only-artifacts"]) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["000000012.png", "000000961.png", "000000077.png", "class_histogram.png"])
    assert len(printed) == 4
    with Image.open(out / "000000961.png") as im:
        assert im.format == "PNG"
        assert im.size[0] == 768 and im.size[1] > 768  # captions band below the image
        # box 1 of 000000961 is [301, 188, 472, 351], class 8: its outline is drawn in the class colour
        rgb = im.convert("RGB")
        assert rgb.getpixel((301, 340)) == rgb.getpixel((472, 340)) == CLASS_COLORS[8]
        assert rgb.getpixel((386, 330)) != CLASS_COLORS[8]  # inside the box: the image


def test_visualize_by_image_id_and_errors(built, tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["visualize", str(built), str(out), "--split", "test", "--image-ids", "000000342"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["000000342.png", "class_histogram.png"]
    assert main(["visualize", str(built), str(out), "--image-ids", "123"]) == 1
    assert "not in split 'test'" in capsys.readouterr().out
    assert main(["visualize", str(built), str(out), "--split", "validation"]) == 1
    assert "available: train, test" in capsys.readouterr().out


@pytest.mark.parametrize("image_id", ["../escape", "sub/name", "/abs", "..", "a\\b"])
def test_overlays_refuse_image_ids_that_leave_the_output_folder(tmp_path, image_id):
    from synartifact_hf.drawing import save_artifact_overlays

    row = {"image": Image.new("RGB", (8, 8)), "artifacts": [], "labels": [13], "image_id": image_id}
    with pytest.raises(ValueError, match="not a plain file name"):
        save_artifact_overlays([row], tmp_path / "out")
    assert not list(tmp_path.rglob("*.png"))


def test_draw_artifacts_marks_each_box_in_its_class_colour():
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    out = draw_artifacts(image, [{"bbox": [20, 40, 120, 90], "label": 11, "caption": None}])
    assert out.size[0] == 200 and out.size[1] > 100  # the legend ("1. Localized blur") goes below
    assert out.getpixel((20, 70)) == CLASS_COLORS[11]
    assert image.getpixel((20, 70)) == (0, 0, 0)  # the input is not modified


def test_class_histogram_png(tmp_path):
    path = plot_class_distribution({"train": {NAMES[2]: 5}, "test": {NAMES[13]: 2}}, tmp_path / "h.png",
                                   images={"train": 5, "test": 2})
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= 600


def test_render_card_fills_and_refuses_holes(tmp_path):
    (tmp_path / "t.md").write_text("# {{ title }}\n{{ n }} images\n")
    assert cards.render_card("t", cards_dir=tmp_path, title="X", n=3) == "# X\n3 images\n"
    with pytest.raises(KeyError, match="needs values for: n"):
        cards.render_card("t.md", cards_dir=tmp_path, title="X")
    with pytest.raises(KeyError, match="no placeholder for: extra"):
        cards.render_card("t.md", cards_dir=tmp_path, title="X", n=1, extra=2)
    with pytest.raises(FileNotFoundError, match="available: t.md"):
        cards.render_card("model_card", cards_dir=tmp_path)
    assert "dataset_card.md" in {p.name for p in cards.CARDS_DIR.glob("*.md")}
    assert "configs_yaml" in cards.placeholders(cards.template_path("dataset_card").read_text())


def test_old_module_name_viz_is_the_drawing_module():
    import synartifact_hf.drawing as drawing
    import synartifact_hf.viz as viz

    assert viz is drawing and viz.draw_artifacts is draw_artifacts
