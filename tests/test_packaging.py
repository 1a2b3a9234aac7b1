"""The wheel carries every data file the package reads at run time (users install wheels, not checkouts),
and building it (or the editable install of the README's set-up) prints no setuptools warnings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BUILD = """
import sys
from setuptools import build_meta
print("WHEEL", build_meta.build_wheel(sys.argv[1]))
print("EDITABLE", build_meta.build_editable(sys.argv[1]))
"""
# setuptools reports problems as "<file>:<line>: SomethingWarning: ..." (its own _Warning,
# SetuptoolsDeprecationWarning, ...); "InformationOnly" (the editable install's note) is not one.
_WARNING = re.compile(r"\b\w*Warning: ")


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Build wheel + editable wheel from a copy of the checkout (so build/ and *.egg-info stay out of it),
    with setuptools' backend called directly: offline, no isolation, output captured."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("synartifact_hf", "hub_cards"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    out = subprocess.run(
        [sys.executable, "-c", _BUILD, str(dist)], cwd=src, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return src, dist, out.stdout + out.stderr


def test_build_prints_no_setuptools_warnings(build):
    _, _, log = build
    assert "absent from the `packages` configuration" not in log
    assert not _WARNING.findall(log), [line for line in log.splitlines() if _WARNING.search(line)][:5]


def test_wheel_ships_templates_sample_metric_folders_and_prompt_lists(build):
    src, dist, _ = build
    (wheel,) = dist.glob("synartifact_hf-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every file of the package folder, and the top-level templates mapped to synartifact_hf/hub_cards.
    expected = {f"synartifact_hf/{p.relative_to(src / 'synartifact_hf').as_posix()}"
                for p in (src / "synartifact_hf").rglob("*") if p.is_file()}
    expected |= {f"synartifact_hf/hub_cards/{p.name}" for p in (src / "hub_cards").glob("*.md")}
    assert sorted(expected - names) == []
    # What each run-time reader needs, spelled out (so an emptied folder cannot pass the check above).
    sample = [n for n in names if n.startswith("synartifact_hf/data/sample/")]
    assert {"synartifact_hf/data/sample/train.txt", "synartifact_hf/data/sample/eval.txt"} <= names
    assert sum(n.endswith(".json") and "/annotation_json_artifacts_class/" in n for n in sample) >= 12
    assert {n.rsplit(".", 1)[1] for n in sample if "/images/" in n} == {"png", "jpg", "webp"}
    assert {f"synartifact_hf/hub_cards/{t}.md" for t in ("dataset_card", "model_card", "metric_card", "ddpo_lora_card")} <= names
    for metric in ("artifact_f1", "artifact_iou"):
        for file in (f"{metric}.py", "README.md", "app.py", "requirements.txt", "__init__.py"):
            assert f"synartifact_hf/metrics/{metric}/{file}" in names
    assert "synartifact_hf/rl/imagenet_animals.txt" in names  # read by rl.prompt_functions
