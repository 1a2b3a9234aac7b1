"""The two label rules (``boxes+caption``, ``boxes``), and the builder over the release's real annotations.

The real-data test reads ``../shared/synartifact-annotations`` (all 1,310 of the release's JSONs, exact
copies; skipped when absent). Expected counts are computed here from the raw JSON with plain ``json``, and
checked against the numbers stated in that folder's README and in the paper (768 with artifacts / 542
without, which the default rule ``boxes+caption`` reproduces exactly).
"""

from __future__ import annotations

import io
import json
import shutil

import datasets
import pytest
from PIL import Image

from synartifact_hf.cli import main
from synartifact_hf.data import SAMPLE_DIR, build_dataset, card_statistics
from synartifact_hf.data.label_rules import check_label_rule, label_ids_for
from synartifact_hf.parsing import parse_answer
from synartifact_hf.taxonomy import NAMES, NO_ARTIFACTS_ID, OTHER_ARTIFACTS_ID


def test_label_ids_under_each_rule():
    assert label_ids_for([4, 2, 2], None, "boxes+caption") == label_ids_for([4, 2, 2], None, "boxes") == [2, 4]
    assert label_ids_for([4], "a shoe on the head", "boxes+caption") == [4, OTHER_ARTIFACTS_ID]
    assert label_ids_for([4], "a shoe on the head", "boxes") == [4]
    assert label_ids_for([], "the whole image is blurred", "boxes+caption") == [OTHER_ARTIFACTS_ID]
    assert label_ids_for([], "the whole image is blurred", "boxes") == [NO_ARTIFACTS_ID]
    assert label_ids_for([], None, "boxes") == [NO_ARTIFACTS_ID]
    with pytest.raises(ValueError, match="unknown label rule 'box'.*'boxes\\+caption', 'boxes'"):
        check_label_rule("box")


def test_boxes_rule_on_the_sample_labels_and_answers_agree(tmp_path, capsys):
    out = tmp_path / "paper-rule"
    assert main(["build-dataset", str(SAMPLE_DIR), str(out), "--label-rule", "boxes"]) == 0
    assert "label rule 'boxes'" in capsys.readouterr().out
    raw = {}
    for path in SAMPLE_DIR.glob("sub_data_*/annotation_json_artifacts_class/*.json"):
        data = json.loads(path.read_text())
        raw[path.stem] = (sorted({int(b["artifacts_class"]) for b in data["Artifacts annotation"]}) or [13],
                          data["Other artifacts caption"])
    for config in ("default", "classification", "detection"):
        ds = datasets.load_dataset(str(out), config)
        for split in ds:
            for row in ds[split].remove_columns("images" if config != "default" else "image"):
                labels, other = raw[row["image_id"]]
                assert row["labels"] == labels, (config, row["image_id"])
                if config == "default":
                    assert row["has_artifacts"] is (labels != [13])
                    # the caption stays in its column under either rule
                    assert row["other_artifacts_caption"] == (None if other == "None" else other)
                else:
                    parsed = parse_answer(row["completion"][0]["content"][0]["text"])
                    assert parsed.labels == [NAMES[i] for i in labels]
                    assert parsed.other_caption is None


def test_cli_refuses_an_unknown_rule(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["build-dataset", str(SAMPLE_DIR), str(tmp_path / "x"), "--label-rule", "captions"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'captions'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown label rule"):
        build_dataset(SAMPLE_DIR, tmp_path / "y", label_rule="captions", progress=False)
    assert not (tmp_path / "y").exists()


# ----------------------------------------------------------------------------------------------
# The release's real annotations with placeholder images


def _placeholder(width: int, height: int, fmt: str) -> bytes:
    # 1-bit PNGs and grey JPEGs encode in microseconds; WEBP has no grey mode.
    mode = {"PNG": "1", "JPEG": "L", "WEBP": "RGB"}[fmt]
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format=fmt, **({"quality": 10, "method": 0} if fmt == "WEBP" else {}))
    return buf.getvalue()


@pytest.fixture(scope="module")
def real_release(tmp_path_factory, release_annotations):
    """A copy of the release layout: the 1,310 real JSONs, split lists reduced to them (same order), and
    for each a placeholder image in the listed format, as small as the builder's checks allow: the
    builder validates that every box lies inside the image, so the image is just large enough to hold
    its boxes (8x8 when it has none)."""
    annotations = release_annotations
    root = tmp_path_factory.mktemp("release") / "data"
    expected = {"train": [], "test": []}
    for split, list_name in (("train", "train.txt"), ("test", "eval.txt")):
        kept = []
        for line in (annotations / list_name).read_text().split():
            folder, _, name = line.split("/")
            stem, ext = name.rsplit(".", 1)
            source = annotations / folder / "annotation_json_artifacts_class" / f"{stem}.json"
            if not source.is_file():
                continue
            target = root / folder / "annotation_json_artifacts_class" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            data = json.loads(source.read_text())
            boxes = data["Artifacts annotation"]
            width = max([8, *(b["rect_end"][0] for b in boxes)])
            height = max([8, *(b["rect_end"][1] for b in boxes)])
            image = root / line
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes(_placeholder(width, height, {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[ext]))
            kept.append(line)
            expected[split].append((stem, bool(boxes), data["Other artifacts caption"] != "None"))
        (root / list_name).write_text("".join(f"{line}\n" for line in kept))
    return root, expected


def test_real_annotations_build_and_both_rules_count_as_stated(real_release, tmp_path):
    root, expected = real_release
    rows = [item for split in expected.values() for item in split]
    assert (len(expected["train"]), len(expected["test"])) == (1045, 265)
    with_box = sum(has_box for _, has_box, _ in rows)
    caption_only = sum(not has_box and other for _, has_box, other in rows)
    # The annotations README's numbers, recounted from the raw JSON: the default rule (a box or an
    # other-artifacts caption) gives exactly the paper's 768 / 542; boxes alone give 728.
    assert (len(rows), with_box, caption_only) == (1310, 728, 40)
    assert (with_box + caption_only, len(rows) - with_box - caption_only) == (768, 542)
    assert round(100 * with_box / len(rows), 1) == 55.6
    assert round(100 * (with_box + caption_only) / len(rows), 1) == 58.6

    counts = {}
    for rule, configs in (("boxes", ["default", "classification", "detection"]), ("boxes+caption", ["default"])):
        out = tmp_path / f"synartifact-1k-{rule.replace('+', '-')}"
        report = build_dataset(root, out, configs=configs, label_rule=rule, progress=False)  # strict: all valid
        assert report.skipped == [] and report.rows["default"] == {"train": 1045, "test": 265}
        ds = datasets.load_dataset(str(out))
        counts[rule] = sum(ds[s]["has_artifacts"].count(True) for s in ds)
        card = (out / "README.md").read_text()
        assert f"follows the label rule\n**`{rule}`**" in card
        here = {r: " **(`labels` here)**" if r == rule else "" for r in ("boxes", "boxes+caption")}
        assert f"| `boxes`: at least one box{here['boxes']} | 728 | 582 | 55.6 % |" in card
        assert f"| `boxes+caption`: a box or an other-artifacts caption{here['boxes+caption']} | 768 | 542 | 58.6 % |" in card
        assert "| the paper, all 1,310 release images | 768 | 542 | 58.6 % |" in card
        per_split = [sum(has_box for _, has_box, _ in expected[s]) for s in ("train", "test")]
        assert f"| with at least one box | {per_split[0]} | {per_split[1]} | 728 |" in card_statistics(out)
    assert counts == {"boxes": 728, "boxes+caption": 768}

    # Under the `boxes` rule every reference answer parses back to the row's labels.
    out = tmp_path / "synartifact-1k-boxes"
    for config in ("classification", "detection"):
        for part in datasets.load_dataset(str(out), config).values():
            for row in part.remove_columns("images"):
                parsed = parse_answer(row["completion"][0]["content"][0]["text"])
                assert parsed.labels == [NAMES[i] for i in row["labels"]], (config, row["image_id"])
