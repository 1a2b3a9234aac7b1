"""The embedded sample is ours, not the release's: no file of the package is a copy of a release file,
and the annotations keep the release's exact schema and every quirk of its files (checked against the
real files in ../shared when present)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from synartifact_hf.data.embedded_sample import SAMPLE_DIR, SAMPLE_FILES

PACKAGE = Path(__file__).resolve().parents[1] / "synartifact_hf"
SHARED = Path(__file__).resolve().parents[2] / "shared"
RELEASE_COPIES = [SHARED / "synartifact-annotations", SHARED / "synartifact-sample"]
KEYS = ["Model Type", "Dataset", "Prompt", "Image path", "Artifacts annotation", "Other artifacts caption",
        "T2I misalignment caption", "Aesthetics score"]
BOX_KEYS = ["rect_start", "rect_end", "artifacts_caption", "artifacts_class"]


def _annotations() -> dict[str, tuple[str, dict]]:
    """{image path: (file text, parsed)} of the sample, in split-list order."""
    out = {}
    for _, image in SAMPLE_FILES:
        folder, _, name = image.split("/")
        text = (SAMPLE_DIR / folder / "annotation_json_artifacts_class" / f"{name.rsplit('.', 1)[0]}.json").read_text()
        out[image] = (text, json.loads(text))
    return out


def _release_files() -> list[Path]:
    files = [p for root in RELEASE_COPIES if root.is_dir() for p in root.rglob("*.json")]
    if not files:
        pytest.skip("../shared/synartifact-annotations (the release's annotation files) not present")
    return files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_no_file_of_the_package_is_a_copy_of_a_release_file():
    release = {_sha(p.read_bytes()) for p in _release_files()}
    assert len(release) > 1000
    ours = [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    copies = [p.relative_to(PACKAGE).as_posix() for p in ours if _sha(p.read_bytes()) in release]
    assert copies == []
    # nor a release record re-serialized: no sample prompt is a release prompt
    release_prompts = {json.loads(p.read_text())["Prompt"] for p in _release_files()}
    assert not {record["Prompt"] for _, record in _annotations().values()} & release_prompts


def test_sample_keeps_every_quirk_of_the_release_files():
    annotations = _annotations()
    assert len(annotations) == 18 and (SAMPLE_DIR / "train.txt").read_text().endswith("\n")
    styles, class_types, tags = [], set(), []
    for image, (text, record) in annotations.items():
        assert text.isascii() and not text.endswith("\n"), image
        indented = text == json.dumps(record, indent=4)
        assert indented or text == json.dumps(record), f"{image}: not json.dumps output"
        styles.append(indented)
        assert list(record)[:8] == KEYS and list(record)[8:] in ([], ["tag"]), image
        tags += [(indented, record["tag"])] if "tag" in record else []
        assert record["Image path"] == image
        for box in record["Artifacts annotation"]:
            assert list(box) == BOX_KEYS
            assert box["rect_start"][0] < box["rect_end"][0] and box["rect_start"][1] < box["rect_end"][1]
            class_types.add((image.split("/")[0], type(box["artifacts_class"])))
    assert 1 <= sum(styles) < len(styles) and tags == [(True, "Default Tag")]
    assert (("sub_data_2", int) in class_types and ("sub_data_2", str) in class_types
            and all(kind is str for folder, kind in class_types if folder != "sub_data_2"))
    records = [record for _, record in annotations.values()]
    assert any(isinstance(r["Aesthetics score"], int) for r in records)
    assert any(not r["Artifacts annotation"] and r["Other artifacts caption"] != "None" for r in records)
    assert any(r["Other artifacts caption"] == "None" and r["T2I misalignment caption"] == "None" for r in records)
    assert any(r["Prompt"].endswith(" ") for r in records) and any('"' in r["Prompt"] for r in records)
    assert {r["Dataset"] for r in records} == {"COCO2017", "Drawbench", "ImageRewardDB", "Midjourney", "ImageNet-1k", "Users"}
    assert {int(b["artifacts_class"]) for r in records for b in r["Artifacts annotation"]} == set(range(12))
    assert any(0 in b["rect_start"] for r in records for b in r["Artifacts annotation"])


def test_sample_values_are_ones_the_release_uses():
    release = [json.loads(p.read_text()) for p in _release_files()]
    models = {(r["Model Type"], r["Dataset"]) for r in release}
    key_orders = {tuple(r) for r in release}
    # each release image id has one extension, given by the split lists
    lines = (SHARED / "synartifact-annotations" / "train.txt").read_text().split()
    lines += (SHARED / "synartifact-annotations" / "eval.txt").read_text().split()
    ext_of_id = {Path(line).stem: Path(line).suffix for line in lines}
    for image, (_, record) in _annotations().items():
        assert (record["Model Type"], record["Dataset"]) in models, image
        assert tuple(record) in key_orders, image
        assert ext_of_id[Path(image).stem] == Path(image).suffix, image
