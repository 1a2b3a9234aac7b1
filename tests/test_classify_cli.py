"""`synartifact-hf classify`: files, recursive folders, built dataset folders, JSON lines, resume,
per-image errors and the summary. Tiny random model, 4-token answers (mechanics only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from synartifact_hf.cli import main


def _write_images(folder, n, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        rng = np.random.RandomState(i)
        Image.fromarray(rng.randint(0, 255, (24 + i, 30, 3), dtype=np.uint8)).save(folder / f"img{i}.png")


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "images"
    _write_images(root, 3)
    _write_images(root / "nested" / "deeper", 2, start=3)
    (root / "notes.txt").write_text("not an image")
    (root / "nested" / "broken.png").write_bytes(b"\x89PNG this is not a png")
    single = tmp_path / "single.jpg"
    Image.new("RGB", (20, 20), "blue").save(single)
    return root, single


def _classify(model, *paths, output, extra=()):
    return main(["classify", *map(str, paths), "--model", str(model), "--output", str(output),
                 "--max-new-tokens", "4", "--batch-size", "4", *extra])


def test_files_and_recursive_folders_with_errors_and_summary(tiny_llava_path, tree, tmp_path, capsys):
    root, single = tree
    output = tmp_path / "out" / "results.jsonl"
    assert _classify(tiny_llava_path, root, single, output=output, extra=["--scores"]) == 0
    records = _lines(output)
    keys = [r["image"] for r in records]
    assert len(keys) == len(set(keys)) == 7  # 5 images + broken + single; notes.txt ignored
    assert str(single.resolve()) in keys and str((root / "nested" / "deeper" / "img4.png").resolve()) in keys
    errors = [r for r in records if "error" in r]
    assert len(errors) == 1 and errors[0]["image"].endswith("broken.png") and "broken.png" in errors[0]["error"]
    for record in records:
        if "error" not in record:
            assert {"labels", "has_artifacts", "generated_text", "parse_issues", "scores"} <= set(record)
            assert sum(record["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    out = capsys.readouterr().out
    assert "7 image(s) (7 new, 0 already done), 1 error(s)" in out
    assert "unparsed answers:" in out


def test_resume_skips_done_images_and_drops_a_half_written_line(tiny_llava_path, tree, tmp_path, capsys):
    root, _ = tree
    output = tmp_path / "results.jsonl"
    assert _classify(tiny_llava_path, root, output=output) == 0
    full = _lines(output)
    # Simulate a crash: two complete lines and half of the third.
    text = output.read_text().splitlines(keepends=True)
    output.write_text("".join(text[:2]) + text[2][: len(text[2]) // 2])
    capsys.readouterr()
    assert _classify(tiny_llava_path, root, output=output) == 0
    resumed = _lines(output)
    assert sorted(r["image"] for r in resumed) == sorted(r["image"] for r in full)
    assert resumed[:2] == full[:2]
    by_key = {r["image"]: r for r in full}
    for record in resumed[2:]:  # recomputed ones equal the first run's (greedy, same model)
        assert record == by_key[record["image"]]
    assert "(4 new, 2 already done)" in capsys.readouterr().out
    # Nothing left to do: the model is not even loaded, and the file is unchanged.
    before = output.read_text()
    assert _classify(tmp_path / "no-such-model", root, output=output) == 0
    assert output.read_text() == before


def test_built_dataset_folder(tiny_llava_path, tmp_path):
    from datasets import load_dataset

    from synartifact_hf.data.embedded_sample import SAMPLE_DIR
    from synartifact_hf.data.export import build_dataset

    folder = tmp_path / "synartifact"
    build_dataset(SAMPLE_DIR, folder, configs=["default"], progress=False)
    output = tmp_path / "ds.jsonl"
    assert _classify(tiny_llava_path, folder, output=output, extra=["--split", "test"]) == 0
    records = _lines(output)
    expected = load_dataset(str(folder), split="test")
    assert len(records) == len(expected)
    assert [r["image"].split("::")[1] for r in records] == [f"default/test/{i}" for i in expected["image_id"]]
    assert all("error" not in r for r in records)


def test_missing_path_is_a_clear_error(tiny_llava_path, tmp_path):
    with pytest.raises(SystemExit, match="nope.png: no such file or folder"):
        _classify(tiny_llava_path, tmp_path / "nope.png", output=tmp_path / "x.jsonl")


def test_image_sources_raise_exceptions_and_log_instead_of_exiting_and_printing(tmp_path, caplog, capsys):
    """Library code raises (the CLI alone turns errors into exit codes) and logs instead of printing."""
    from synartifact_hf.image_sources import collect_items, image_files

    with pytest.raises(FileNotFoundError, match="nope.png: no such file or folder"):
        collect_items([str(tmp_path / "nope.png")])
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    folder = tmp_path / "folder"
    _write_images(folder, 1)
    (folder / "link.png").symlink_to(outside)
    with caplog.at_level("WARNING", logger="synartifact_hf.image_sources"):
        assert [p.name for p in image_files(folder)] == ["img0.png"]
    assert "links outside" in caplog.text and capsys.readouterr().err == ""


def test_bad_results_file_is_a_clear_error_from_the_cli(tiny_llava_path, tree, tmp_path):
    output = tmp_path / "out.jsonl"
    output.write_text('{"not": "a result"}\n')
    with pytest.raises(SystemExit, match=r"out.jsonl:1 has no 'image' key"):
        _classify(tiny_llava_path, tree[1], output=output)


def test_summary_reads_the_output_one_record_at_a_time():
    from synartifact_hf.cli_classify import summarize

    records = iter([{"image": "a", "labels": ["Localized blur"], "has_artifacts": True},
                    {"image": "b", "labels": [], "has_artifacts": False},
                    {"image": "c", "labels": [], "has_artifacts": None},
                    {"image": "d", "error": "UnreadableImageError: ..."}])
    assert summarize(records) == {"images": 4, "errors": 1, "with_artifacts": 1, "without_artifacts": 1,
                                  "unparsed": 1, "labels": {"Localized blur": 1}}
