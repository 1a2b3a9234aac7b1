"""Curation: label_dataset on Dataset / IterableDataset / image folders, the chunk cache (a rerun does
not run the model again), keep/count rules, and the `curate` command's Hub-ready folder. Tiny random
LLaVA, 4-token answers: its answers never parse, so the keep rules are checked on labelled rows written
here."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synartifact_hf.cli import main
from synartifact_hf.curation import count_rows, keep_rows, label_dataset


@pytest.fixture(scope="module")
def classifier(tiny_llava_path):
    from synartifact_hf.pipeline import load_pipeline

    return load_pipeline(tiny_llava_path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "generated"
    (root / "sub").mkdir(parents=True)
    for i in range(5):
        rng = np.random.RandomState(i)
        Image.fromarray(rng.randint(0, 255, (24 + i, 30, 3), dtype=np.uint8)).save(root / ("sub" if i > 2 else "") / f"g{i}.png")
    (root / "sub" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


def _forward_calls(classifier):
    calls = []
    handle = classifier.model.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


def test_label_dataset_caches_chunks_so_a_rerun_computes_nothing(classifier, folder, tmp_path):
    from datasets import Dataset

    from synartifact_hf.curation import load_images

    images = load_images(folder)
    assert images["file_name"] == ["g0.png", "g1.png", "g2.png", "sub/broken.png", "sub/g3.png", "sub/g4.png"]
    calls, handle = _forward_calls(classifier)
    try:
        settings = dict(max_new_tokens=4, batch_size=2, rows_per_cache_file=2, return_scores=True,
                        cache_dir=tmp_path / "cache", progress=False)
        first = label_dataset(folder, classifier, **settings)
        computed = len(calls)
        assert computed > 0 and len(list((tmp_path / "cache").glob("synartifact-labels-*.arrow"))) == 3
        calls.clear()
        again = label_dataset(images, classifier, **settings)
        assert calls == []  # every chunk came from datasets' cache
        assert again.remove_columns("image").to_list() == first.remove_columns("image").to_list()
        # A crash lost one chunk: only that one is computed again.
        sorted((tmp_path / "cache").glob("synartifact-labels-*.arrow"))[0].unlink()
        label_dataset(images, classifier, **settings)
        assert 0 < len(calls) < computed
    finally:
        handle.remove()
    assert first.column_names == ["image", "file_name", "answer", "labels", "has_artifacts", "other_artifacts",
                                  "parse_issues", "error", "scores"]
    columns = first.remove_columns("image")  # the broken file does not decode
    broken = columns[3]
    assert "broken.png" in broken["error"] and broken["answer"] is None and broken["has_artifacts"] is None
    for row in columns.select([0, 1, 2, 4, 5]):
        assert row["error"] is None and isinstance(row["answer"], str)
        assert sum(row["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    # The same rows through the pipeline directly: the columns are its answers.
    direct = classifier([first[i]["image"] for i in (0, 1)], max_new_tokens=4)
    assert [d["generated_text"] for d in direct] == first["answer"][:2]
    # Another classifier setting is another cache entry, not a stale hit.
    calls, handle = _forward_calls(classifier)
    try:
        label_dataset(images, classifier, **{**settings, "max_new_tokens": 3})
        assert calls
    finally:
        handle.remove()
    with pytest.raises(ValueError, match="already has the column"):
        label_dataset(Dataset.from_dict({"image": [], "labels": []}), classifier, progress=False)


def test_iterable_dataset_is_labelled_lazily_like_a_dataset(classifier, folder, tmp_path):
    from synartifact_hf.curation import load_images

    images = load_images(folder).select([0, 1, 2])
    labelled = label_dataset(images, classifier, max_new_tokens=4, batch_size=2, cache_dir=tmp_path, progress=False)
    lazy = label_dataset(images.to_iterable_dataset(), classifier, max_new_tokens=4, batch_size=2)
    assert [r["answer"] for r in lazy] == labelled["answer"]


def test_keep_and_count_rules():
    from datasets import Dataset, Features, Value

    from synartifact_hf.curation import label_columns

    rows = {
        "answer": ["No artifacts.", "1. Localized blur.", "???", None, "No artifacts."],
        "labels": [["No artifacts"], ["Localized blur"], [], [], ["No artifacts"]],
        "has_artifacts": [False, True, None, None, False],
        "other_artifacts": [None] * 5, "parse_issues": [[], [], ["no option recognised"], [], []],
        "error": [None, None, None, "ValueError: cannot read", None],
    }
    features = Features({"image_id": Value("int64"), **label_columns(prefix="p_")})
    labelled = Dataset.from_dict({"image_id": list(range(5)), **{f"p_{k}": v for k, v in rows.items()}},
                                 features=features)
    counts = count_rows(labelled, "p_")
    assert {k: counts[k] for k in ("total", "clean", "flagged", "unparsed", "errors")} == {
        "total": 5, "clean": 2, "flagged": 1, "unparsed": 1, "errors": 1}
    assert counts["labels"] == {"No artifacts": 2, "Localized blur": 1}
    assert keep_rows(labelled, "clean", "p_")["image_id"] == [0, 4]
    assert keep_rows(labelled, "flagged", "p_")["image_id"] == [1]
    assert keep_rows(labelled, "all", "p_")["image_id"] == [0, 1, 2, 4]  # an unreadable image is never kept
    with pytest.raises(ValueError, match="keep must be one of"):
        keep_rows(labelled, "dirty", "p_")


def test_curate_writes_a_hub_ready_folder(tiny_llava_path, folder, tmp_path, capsys):
    from datasets import load_dataset

    from synartifact_hf.data.hub import validate_dataset_folder
    from synartifact_hf.instructions import classification_instruction

    out = tmp_path / "generated-all"
    args = ["curate", str(folder), "--model", str(tiny_llava_path), "--max-new-tokens", "4", "--keep", "all",
            "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(out)]
    assert main(args) == 0
    assert "kept 5 of 6 image(s) (--keep all): 0 clean, 0 flagged, 5 unparsed, 1 unreadable" in capsys.readouterr().out
    ds = load_dataset(str(out), split="train")
    assert len(ds) == 5 and ds["file_name"] == ["g0.png", "g1.png", "g2.png", "sub/g3.png", "sub/g4.png"]
    assert ds[0]["image"].size == (30, 24)  # the image bytes travel with the folder
    assert validate_dataset_folder(out) == ["README.md", "default/train-00000-of-00001.parquet"]
    card = (out / "README.md").read_text()
    assert f"classifier `{tiny_llava_path}`" in card and "`--keep all`" in card
    assert classification_instruction().splitlines()[0] in card
    for line in ("| labelled | 6 |", "| clean (the answer parsed and names no artifact) | 0 |",
                 "| unparsed (the answer names no option: neither clean nor flagged) | 5 |",
                 "| unreadable (the image could not be decoded) | 1 |", "| kept here (`--keep all`) | 5 |"):
        assert line in card
    with pytest.raises(SystemExit, match="already exists"):
        main(args)
    # Noise answers are never clean: nothing to write is an error, not an unloadable empty folder.
    clean = tmp_path / "generated-clean"
    with pytest.raises(SystemExit, match="--keep clean kept none of the 6 image"):
        main([*args[:-1], str(clean), "--keep", "clean"])
    assert not clean.exists()
    # The push step runs after the folder is written and stops at the offline guard (no Hub in tests).
    pushed = tmp_path / "generated-pushed"
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        main([*args[:-1], str(pushed), "--push-to-hub", "someone/generated-all"])
    assert load_dataset(str(pushed), split="train")["file_name"] == ds["file_name"]
