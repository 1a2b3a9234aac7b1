"""Every bad-input case of the issue, each on a temporary copy of the embedded sample: strict mode
fails with a message naming the file and writes nothing; ``skip_invalid`` leaves the file out and
reports it; the raw folder is never modified."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import datasets
import pytest
from PIL import Image

from synartifact_hf.cli import main
from synartifact_hf.data import SAMPLE_DIR, ReleaseError, build_dataset, scan_release
from synartifact_hf.data.embedded_sample import SAMPLE_FILES

IMG = "sub_data_1/images/000000077.png"  # train, 768x768, 2 boxes
ANN = "sub_data_1/annotation_json_artifacts_class/000000077.json"
NUM_SAMPLE = len(SAMPLE_FILES)


@pytest.fixture
def raw(tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(SAMPLE_DIR, root)
    return root


def _edit_json(root: Path, rel: str, fn) -> None:
    path = root / rel
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (no pixel data): a decompression-bomb stand-in that
    costs nothing to write."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def _missing_image(root):
    (root / IMG).unlink()


def _unreadable_image(root):
    (root / IMG).write_bytes(b"this is not an image at all" * 10)


def _truncated_image(root):
    data = (root / IMG).read_bytes()
    (root / IMG).write_bytes(data[: len(data) // 2])


def _malformed_json(root):
    text = (root / ANN).read_text()
    (root / ANN).write_text(text[:-5])


def _unknown_class(root):
    _edit_json(root, ANN, lambda d: d["Artifacts annotation"][0].update(artifacts_class="13"))


def _box_outside(root):
    _edit_json(root, ANN, lambda d: d["Artifacts annotation"][0].update(rect_end=[900, 600]))


def _box_inverted(root):
    _edit_json(root, ANN, lambda d: d["Artifacts annotation"][0].update(rect_start=[300, 10], rect_end=[300, 50]))


def _in_both_splits(root):
    with open(root / "eval.txt", "a") as f:
        f.write(IMG + "\n")


def _in_neither_split(root):
    lines = (root / "train.txt").read_text().splitlines()
    (root / "train.txt").write_text("".join(f"{line}\n" for line in lines if line != IMG))


def _json_without_image(root):
    ann = root / "sub_data_1/annotation_json_artifacts_class/000000099.json"
    data = json.loads((root / ANN).read_text())
    data["Image path"] = "sub_data_1/images/000000099.png"
    ann.write_text(json.dumps(data))


def _json_path_escapes(root):
    _edit_json(root, ANN, lambda d: d.update({"Image path": "sub_data_1/../../../etc/passwd"}))


def _list_path_escapes(root):
    with open(root / "train.txt", "a") as f:
        f.write("../outside/images/000000001.png\n")


def _decompression_bomb(root):
    (root / IMG).write_bytes(_png_header_only(8000, 8000))


def _missing_key(root):
    _edit_json(root, ANN, lambda d: d.pop("Prompt"))


CASES = {
    "missing image": (_missing_image, IMG, "image file does not exist"),
    "unreadable image": (_unreadable_image, IMG, "unreadable image"),
    "truncated image": (_truncated_image, IMG, "truncated"),
    "malformed JSON": (_malformed_json, ANN, "malformed JSON"),
    "unknown class index": (_unknown_class, ANN, "unknown class index 13"),
    "box outside the image": (_box_outside, ANN, "lies outside the 768x768 image"),
    "box with x2 <= x1": (_box_inverted, ANN, "empty or inverted"),
    "image in both splits": (_in_both_splits, IMG, "listed in both splits"),
    "image in neither split": (_in_neither_split, ANN, "listed in neither train.txt nor eval.txt"),
    "JSON without an image": (_json_without_image, "000000099.json", "annotation without an image"),
    "Image path escapes the root": (_json_path_escapes, ANN, "escapes the data root"),
    "split list path escapes the root": (_list_path_escapes, "../outside", "escapes the data root"),
    "decompression bomb": (_decompression_bomb, IMG, "over the limit"),
    "missing key": (_missing_key, ANN, "missing key 'Prompt'"),
}


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(CASES))
def test_strict_mode_names_the_file_and_writes_nothing(raw, tmp_path, case):
    mutate, name, message = CASES[case]
    mutate(raw)
    before = _tree_digest(raw)
    out = tmp_path / "built"
    with pytest.raises(ReleaseError) as info:
        build_dataset(raw, out, configs=["default"], progress=False)
    text = str(info.value)
    assert message in text and name in text, text
    assert "1 problem(s)" in text and "nothing was written" in text
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary sibling left
    assert _tree_digest(raw) == before  # the raw release is never modified


@pytest.mark.parametrize("case", ["missing image", "truncated image", "unknown class index", "image in both splits",
                                  "JSON without an image", "Image path escapes the root"])
def test_skip_invalid_leaves_the_file_out_and_reports_it(raw, tmp_path, case):
    mutate, name, message = CASES[case]
    mutate(raw)
    report = build_dataset(raw, tmp_path / "built", configs=["default"], skip_invalid=True, progress=False)
    assert len(report.skipped) == 1 and message in report.skipped[0].reason and name in report.skipped[0].reason
    summary = report.summary()
    assert "skipped 1 file(s)" in summary and message in summary
    ds = datasets.load_dataset(str(tmp_path / "built"))
    kept = list(ds["train"]["file_name"]) + list(ds["test"]["file_name"])
    if case != "JSON without an image":  # that one is an extra file; all sample images stay
        assert IMG not in kept and len(kept) == NUM_SAMPLE - 1
    else:
        assert len(kept) == NUM_SAMPLE
    card = (tmp_path / "built" / "README.md").read_text()
    assert "1 file(s) of the release were left out" in card and report.skipped[0].path in card


def test_max_image_pixels_is_configurable(raw):
    with pytest.raises(ReleaseError, match="over the limit of 300,000"):
        scan_release(raw, max_image_pixels=300_000, progress=False)
    release = scan_release(raw, max_image_pixels=300_000, skip_invalid=True, progress=False)
    sizes = []
    for _, file_name in SAMPLE_FILES:
        with Image.open(raw / file_name) as im:
            sizes.append(im.size[0] * im.size[1])
    small = [s for s in sizes if s <= 300_000]
    assert 0 < len(small) < len(sizes)
    assert release.num_records == len(small)  # only these (the 512x512 images) fit
    assert sorted(r.width * r.height for r in release.all_records()) == sorted(small)


def test_all_problems_are_listed_at_once(raw):
    _missing_image(raw)
    _unknown_class(raw)  # same image: its annotation is checked first
    _in_both_splits(raw)
    (raw / "sub_data_0/images/000000233.jpg").write_bytes(b"junk")
    with pytest.raises(ReleaseError) as info:
        scan_release(raw, progress=False)
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "listed in both splits" in text and "000000233.jpg: unreadable image" in text


def test_release_level_problems_always_raise(raw, tmp_path):
    (raw / "eval.txt").unlink()
    with pytest.raises(ReleaseError, match="eval.txt: split list not found"):
        build_dataset(raw, tmp_path / "x", skip_invalid=True, progress=False)
    with pytest.raises(ReleaseError, match="data folder not found"):
        scan_release(tmp_path / "nowhere", progress=False)


def test_symlink_escaping_the_root_is_refused(raw, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(raw / IMG, outside)
    (raw / IMG).unlink()
    (raw / IMG).symlink_to(outside)
    with pytest.raises(ReleaseError, match="resolves outside the data root"):
        scan_release(raw, progress=False)


def test_cli_reports_errors_and_skips(raw, tmp_path, capsys):
    _truncated_image(raw)
    out = tmp_path / "built"
    assert main(["build-dataset", str(raw), str(out), "--configs", "default"]) == 1
    assert "truncated" in capsys.readouterr().out and not out.exists()
    assert main(["build-dataset", str(raw), str(out), "--configs", "default", "--skip-invalid"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 file(s)" in printed and IMG in printed
