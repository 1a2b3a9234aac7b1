"""synartifact_hf.hub_folder: the staging context, the out-dir guard, the shard writer; and the package's
module borders (no private names taken across modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from synartifact_hf.hub_folder import check_out_dir, staged_folder, write_parquet_shards

ROOT = Path(__file__).resolve().parents[1]


def test_staged_folder_swaps_on_success_and_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "curated"
    with staged_folder(out) as staging:
        assert staging.parent == tmp_path and staging != out
        (staging / "README.md").write_text("v1")
    assert (out / "README.md").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curated"]
    with pytest.raises(FileExistsError, match="already exists"):
        with staged_folder(out):
            pass
    with pytest.raises(RuntimeError, match="boom"):
        with staged_folder(out, overwrite=True) as staging:
            (staging / "README.md").write_text("v2")
            raise RuntimeError("boom")
    assert (out / "README.md").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curated"]
    with staged_folder(out, overwrite=True) as staging:
        (staging / "README.md").write_text("v2")
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]  # the staging marker never goes live
    assert (out / "README.md").read_text() == "v2"


def test_check_out_dir_refuses_foreign_folders_and_the_raw_input(tmp_path):
    check_out_dir(tmp_path / "new", overwrite=False)
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="already exists"):
        check_out_dir(foreign, overwrite=False)
    with pytest.raises(FileExistsError, match="does not look like a dataset folder"):
        check_out_dir(foreign, overwrite=True)
    (foreign / "README.md").write_text("card")
    check_out_dir(foreign, overwrite=True)
    with pytest.raises(FileExistsError, match="does not look like"):
        check_out_dir(foreign, overwrite=True, looks_like_ours=lambda folder: False)
    with pytest.raises(ValueError, match="overlaps the raw release"):
        check_out_dir(foreign / "out", overwrite=False, raw_dir=foreign)


def test_write_parquet_shards_caps_shards_and_embeds_images(tmp_path):
    import pyarrow.parquet as pq
    from datasets import Dataset, Image, load_dataset
    from PIL import Image as PILImage

    files = []
    for i in range(5):
        files.append(str(tmp_path / f"{i}.png"))
        PILImage.new("RGB", (8, 8), (i * 40, 0, 0)).save(files[-1])
    dataset = Dataset.from_dict({"image": files, "n": list(range(5))}).cast_column("image", Image())
    folder = tmp_path / "out" / "default"
    folder.mkdir(parents=True)
    names = write_parquet_shards(dataset, folder, "train", max_shard_size=1, batch_rows=2)
    assert names == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    assert sum(pq.ParquetFile(folder / n).metadata.num_rows for n in names) == 5
    for path in files:
        Path(path).unlink()  # the shards stand alone
    loaded = load_dataset(str(folder.parent), split="train")
    assert loaded["n"] == list(range(5)) and loaded[4]["image"].getpixel((0, 0)) == (160, 0, 0)


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("synartifact_hf")):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.endswith("__")]  # dunders are public
    return found


def test_no_module_of_the_package_takes_another_modules_private_names():
    offenders = {str(p.relative_to(ROOT)): names for p in sorted((ROOT / "synartifact_hf").rglob("*.py"))
                 if (names := _private_imports(p))}
    assert not offenders, f"private names imported across modules: {offenders}"
