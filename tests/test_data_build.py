"""Full build of the embedded sample, and every column read back through ``load_dataset``.

Expected values are computed here from the raw JSON files with plain ``json`` (not through the
package's reader), so a reader bug cannot hide behind itself.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import datasets
import pytest
import yaml
from PIL import Image

from synartifact_hf.cards import split_front_matter
from synartifact_hf.data import (
    CONFIG_NAMES,
    SAMPLE_DIR,
    SynArtifact1K,
    build_dataset,
    build_sample_dataset,
    card_statistics,
    features_for,
)
from synartifact_hf.instructions import (
    classification_instruction,
    detection_instruction,
    format_classification_answer,
    padded_to_pixel,
)
from synartifact_hf.parsing import parse_answer
from synartifact_hf.taxonomy import NAMES


def _raw_expectations() -> dict[str, dict[str, dict]]:
    """{split: {image_id: expected default row (without the image)}} straight from the raw files."""
    out: dict[str, dict[str, dict]] = {}
    for split, list_name in (("train", "train.txt"), ("test", "eval.txt")):
        out[split] = {}
        for line in (SAMPLE_DIR / list_name).read_text().split():
            folder, _, name = line.split("/")
            stem = name.rsplit(".", 1)[0]
            raw = json.loads((SAMPLE_DIR / folder / "annotation_json_artifacts_class" / f"{stem}.json").read_text())
            boxes = [
                {"bbox": [*b["rect_start"], *b["rect_end"]], "label": int(b["artifacts_class"]), "caption": b["artifacts_caption"]}
                for b in raw["Artifacts annotation"]
            ]
            other = None if raw["Other artifacts caption"] == "None" else raw["Other artifacts caption"]
            t2i = None if raw["T2I misalignment caption"] == "None" else raw["T2I misalignment caption"]
            labels = sorted({b["label"] for b in boxes} | ({12} if other else set())) or [13]
            with Image.open(SAMPLE_DIR / line) as im:
                width, height = im.size
            out[split][stem] = {
                "image_id": stem,
                "file_name": line,
                "prompt": raw["Prompt"],
                "generator": raw["Model Type"],
                "prompt_source": raw["Dataset"],
                "labels": labels,
                "has_artifacts": labels != [13],
                "artifacts": boxes,
                "other_artifacts_caption": other,
                "t2i_misalignment_caption": t2i,
                "aesthetics_score": float(raw["Aesthetics score"]),
                "width": width,
                "height": height,
                "_sha": hashlib.sha256((SAMPLE_DIR / line).read_bytes()).hexdigest(),
            }
    return out


EXPECTED = _raw_expectations()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_sample_dataset(tmp_path_factory.mktemp("out") / "synartifact-1k")


def _sha_of(image_feature_value: dict) -> str:
    return hashlib.sha256(image_feature_value["bytes"]).hexdigest()


def test_folder_layout_and_card_yaml(built):
    files = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert files == sorted(
        ["README.md", "class_distribution.png"]
        + [f"{c}/{s}-00000-of-00001.parquet" for c in CONFIG_NAMES for s in ("train", "test")]
    )
    meta = yaml.safe_load(split_front_matter((built / "README.md").read_text())[0])
    assert [c["config_name"] for c in meta["configs"]] == list(CONFIG_NAMES)
    assert meta["configs"][0]["default"] is True
    assert meta["configs"][1]["data_files"] == [
        {"split": "train", "path": "classification/train-*"},
        {"split": "test", "path": "classification/test-*"},
    ]
    for key in ("license", "task_categories", "tags", "pretty_name", "size_categories"):
        assert meta[key]
    card = (built / "README.md").read_text()
    assert "](class_distribution.png)" in card and "arXiv:2402.18068" in card and "{{" not in card
    with Image.open(built / "class_distribution.png") as chart:
        assert chart.format == "PNG" and chart.size[0] > 300
    # no temporary sibling left behind
    assert [p.name for p in built.parent.iterdir()] == [built.name]


def test_default_config_round_trips_every_column(built):
    ds = datasets.load_dataset(str(built))  # the card's default config
    assert set(ds) == {"train", "test"}
    assert ds["train"].features == features_for("default")
    for split, expected in EXPECTED.items():
        part = ds[split].cast_column("image", datasets.Image(decode=False))
        assert part["image_id"] == list(expected)  # split-list order
        for row in part:
            want = dict(expected[row["image_id"]])
            assert _sha_of(row.pop("image")) == want.pop("_sha")  # bytes stored verbatim
            assert row == want
    # decoded images have the stored size
    row = ds["test"][0]
    assert row["image"].size == (row["width"], row["height"])
    assert ds["train"].features["labels"].feature.names == list(NAMES)


def test_label_rule_counts(built):
    ds = datasets.load_dataset(str(built))
    with_art = sum(ds[s]["has_artifacts"].count(True) for s in ds)
    without = sum(ds[s]["has_artifacts"].count(False) for s in ds)
    # By hand from the 18 sample files: 4 have no boxes and no other-artifacts caption (000000233 has
    # only a T2I caption, which makes no label); 000000342 has no boxes but an other-artifacts caption,
    # so it counts as an artifact image ("Other artifacts").
    assert (with_art, without) == (14, 4)
    test = ds["test"]
    row_342 = test[test["image_id"].index("000000342")]
    assert row_342["labels"] == [NAMES.index("Other artifacts")] and row_342["artifacts"] == []
    # int and string artifacts_class both map (some sub_data_2 files use ints)
    train = ds["train"]
    row_871 = train[train["image_id"].index("000000871")]
    assert [a["label"] for a in row_871["artifacts"]] == [0, 10, 2]
    stats = card_statistics(built)
    assert "| with artifacts (label rule) | 9 | 5 | 14 |" in stats
    assert '| without artifacts ("No artifacts") | 3 | 1 | 4 |' in stats
    assert "| Distorted and deformed components | 5 | 2 | 7 |" in stats
    assert "| 1024x1024 | 2 | 1 | 3 |" in stats


def test_classification_config_is_trl_prompt_completion(built):
    ds = datasets.load_dataset(str(built), "classification")
    assert ds["test"].features == features_for("classification")
    instruction = classification_instruction()
    for split, expected in EXPECTED.items():
        part = ds[split].cast_column("images", datasets.List(datasets.Image(decode=False)))
        for row in part:
            want = expected[row["image_id"]]
            assert len(row["images"]) == 1 and _sha_of(row["images"][0]) == want["_sha"]
            assert row["prompt"] == [
                {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": instruction}]}
            ]
            names = [NAMES[i] for i in want["labels"] if i != 13]
            answer = format_classification_answer(names, other_caption=want["other_artifacts_caption"])
            assert row["completion"] == [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
            assert row["labels"] == want["labels"]
            assert parse_answer(answer).labels == [NAMES[i] for i in want["labels"]]


def test_detection_boxes_round_trip_to_pixels(built):
    ds = datasets.load_dataset(str(built), "detection")
    for split, expected in EXPECTED.items():
        for row in ds[split].remove_columns("images"):
            want = expected[row["image_id"]]
            assert row["prompt"][0]["content"][1]["text"] == detection_instruction()
            answer = row["completion"][0]["content"][0]["text"]
            parsed = parse_answer(answer)
            assert parsed.judgement is want["has_artifacts"]
            assert parsed.labels == [NAMES[i] for i in want["labels"]]
            got = sorted(
                (NAMES.index(b["label"]), *padded_to_pixel(b["bbox"], want["width"], want["height"]))
                for b in parsed.boxes
            )
            ref = sorted((a["label"], *a["bbox"]) for a in want["artifacts"])
            assert len(got) == len(ref)
            side = max(want["width"], want["height"])
            for g, r in zip(got, ref):
                assert g[0] == r[0]
                # 3 decimals of the padded side: at most half a thousandth of it off
                assert all(abs(a - b) <= side * 0.0005 + 1e-6 for a, b in zip(g[1:], r[1:]))


def test_trl_collator_trains_on_the_answer_only(built, tiny_llava_path):
    """TRL's own vision collator on our rows: prompt tokens are masked, the completion is the target."""
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    processor = AutoProcessor.from_pretrained(tiny_llava_path)
    ds = datasets.load_dataset(str(built), "classification")["test"]
    rows = [{k: ds[i][k] for k in ("images", "prompt", "completion")} for i in (0, 4)]
    batch = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)(rows)
    for i, row in enumerate(rows):
        target = batch["labels"][i] != -100
        decoded = processor.tokenizer.decode(batch["input_ids"][i][target], skip_special_tokens=True)
        assert decoded.strip() == row["completion"][0]["content"][0]["text"]
    assert batch["pixel_values"].shape[0] == 2


def test_builder_streams_programmatically(tmp_path):
    builder = SynArtifact1K(data_dir=str(SAMPLE_DIR), config_name="default", cache_dir=str(tmp_path))
    builder.download_and_prepare()
    ds = builder.as_dataset()
    assert {s: ds[s].num_rows for s in ds} == {"train": 12, "test": 6}
    assert builder.info.splits["train"].num_examples == 12


def test_num_proc_and_subset_of_configs(tmp_path, monkeypatch):
    import synartifact_hf.data.builder as builder_module

    monkeypatch.setattr(builder_module, "_SHARD_SIZE", 4)  # several generator shards -> two worker jobs
    report = build_dataset(SAMPLE_DIR, tmp_path / "d", configs=["detection"], num_proc=2, progress=False)
    assert report.rows == {"detection": {"train": 12, "test": 6}}
    ds = datasets.load_dataset(str(tmp_path / "d"))  # the only config becomes the default
    assert list(ds["train"]["image_id"]) == list(EXPECTED["train"])  # order survives the worker jobs
    assert list(ds["test"]["image_id"]) == list(EXPECTED["test"])
    assert "completion" in ds["train"].column_names
    assert "skipped: none" in report.summary()


def test_cli_build_dataset_and_no_clobber(tmp_path, capsys):
    from synartifact_hf.cli import main

    out = tmp_path / "synartifact-1k"
    assert main(["build-dataset", str(SAMPLE_DIR), str(out), "--configs", "default"]) == 0
    assert "default: train 12, test 6" in capsys.readouterr().out
    before = (out / "README.md").read_bytes()
    assert main(["build-dataset", str(SAMPLE_DIR), str(out), "--configs", "classification"]) == 1
    assert "already exists" in capsys.readouterr().out
    assert (out / "README.md").read_bytes() == before
    assert main(["build-dataset", str(SAMPLE_DIR), str(out), "--configs", "classification", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "class_distribution.png", "classification"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synartifact-1k"]


def test_overwrite_refuses_foreign_folders_and_the_raw_tree(tmp_path):
    foreign = tmp_path / "my-stuff"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="does not look like a dataset folder"):
        build_dataset(SAMPLE_DIR, foreign, configs=["default"], overwrite=True, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(ValueError, match="overlaps the raw release"):
        build_dataset(SAMPLE_DIR, SAMPLE_DIR / "out", configs=["default"], progress=False)


def test_packaged_sample_is_untouched_and_labelled_placeholder():
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert "PLACEHOLDER" in readme
    assert not (SAMPLE_DIR / "out").exists()
    for split in EXPECTED.values():
        for row in split.values():
            with Image.open(io.BytesIO((SAMPLE_DIR / row["file_name"]).read_bytes())) as im:
                assert im.size == (row["width"], row["height"])


def test_large_splits_are_sharded_in_order(tmp_path):
    sizes = {split: sum((SAMPLE_DIR / row["file_name"]).stat().st_size for row in rows.values())
             for split, rows in EXPECTED.items()}
    shard_size = sizes["train"] // 3 + 1  # -> 3 train shards
    report = build_dataset(SAMPLE_DIR, tmp_path / "sharded", configs=["default"], max_shard_size=shard_size,
                           progress=False)
    train_files = [f for f in report.files if f.startswith("default/train-")]
    assert train_files == [f"default/train-0000{i}-of-00003.parquet" for i in range(3)]
    ds = datasets.load_dataset(str(tmp_path / "sharded"))
    assert list(ds["train"]["image_id"]) == list(EXPECTED["train"])
    assert list(ds["test"]["image_id"]) == list(EXPECTED["test"])
