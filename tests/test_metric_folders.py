"""The metric folders are Hub-ready: self-contained, card in sync with the module, working Spaces app."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import textwrap

import pytest
from evaluate.loading import get_imports

import synartifact_hf.metrics
from synartifact_hf.metrics.card import module_strings, render_metric_card
from synartifact_hf.metrics.space_app import EXAMPLES, SDK_VERSION, render_space_app

METRICS = synartifact_hf.metrics.METRICS


def test_path():
    for name in METRICS:
        assert os.path.isfile(os.path.join(synartifact_hf.metrics.path(name), f"{name}.py"))
    with pytest.raises(KeyError, match="available metrics are"):
        synartifact_hf.metrics.path("f1")


@pytest.mark.parametrize("name", METRICS)
def test_committed_card_equals_its_rendering(name):
    with open(os.path.join(synartifact_hf.metrics.path(name), "README.md"), encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == render_metric_card(name), "run `python -m synartifact_hf.metrics.card` and commit"
    strings = module_strings(name)
    assert strings["_CITATION"].strip() in committed
    assert committed.startswith(f"---\ntitle: {name}\n") and "app_file: app.py" in committed


@pytest.mark.parametrize("name", METRICS)
def test_module_imports_only_listed_libraries_and_sibling_files(name):
    folder = synartifact_hf.metrics.path(name)
    with open(os.path.join(folder, "requirements.txt"), encoding="utf-8") as handle:
        required = {
            line.split(">=")[0].strip() for line in handle if line.strip() and not line.startswith("#")
        }
    for import_type, import_name, _, _ in get_imports(os.path.join(folder, f"{name}.py")):
        if import_type == "library":
            assert import_name in required, f"{name}.py imports {import_name}, missing from requirements.txt"
            assert import_name != "synartifact_hf"
        else:
            assert import_type == "internal" and os.path.isfile(os.path.join(folder, f"{import_name}.py"))


def test_folders_work_without_synartifact_hf(tmp_path):
    # What a Hub user gets: the folder alone, with synartifact_hf not importable.
    for name in METRICS:
        shutil.copytree(
            synartifact_hf.metrics.path(name), tmp_path / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["synartifact_hf"] = None
        import evaluate
        f1 = evaluate.load({str(tmp_path / "artifact_f1")!r})
        print(round(f1.compute(predictions=[[3], ["No artifacts"]], references=[[3, 4], [13]])["f1"], 4))
        iou = evaluate.load({str(tmp_path / "artifact_iou")!r})
        box = {{"boxes": [[0, 0, 2, 2]], "labels": ["Localized blur"]}}
        print(iou.compute(predictions=[box], references=[box])["mean_iou"])
        try:
            evaluate.load({str(tmp_path / "artifact_f1")!r}, "text").compute(predictions=["x"], references=[[13]])
        except ImportError as error:
            print("ImportError:", error)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:2] == ["0.8333", "1.0"]
    assert lines[2].startswith("ImportError:") and "pip install synartifact-hf" in lines[2]


@pytest.mark.parametrize("name", METRICS)
def test_spaces_app_is_its_rendering_and_computes(name):
    # The app is launched and used through a real browser in test_metric_spaces_browser.py; here: the
    # committed file is the rendering, it builds on the installed gradio and its handler computes.
    gr = pytest.importorskip("gradio", reason="the metric Spaces app needs gradio: pip install 'synartifact-hf[app]'")
    file = os.path.join(synartifact_hf.metrics.path(name), "app.py")
    with open(file, encoding="utf-8") as handle:
        assert handle.read() == render_space_app(name), "run `python -m synartifact_hf.metrics.card` and commit"
    space = runpy.run_path(file)  # not as __main__: builds the Blocks, does not launch
    assert isinstance(space["demo"], gr.Blocks) and space["module"].name == name
    predictions, references = EXAMPLES[name]
    expected = space["module"].compute(predictions=predictions, references=references)
    assert space["compute"](json.dumps(predictions), json.dumps(references)) == expected
    with pytest.raises(gr.Error, match="predictions is not valid JSON"):
        space["compute"]("[1,", json.dumps(references))
    with pytest.raises(gr.Error, match="ValueError"):
        space["compute"](json.dumps(predictions), json.dumps(references * 2))


def test_metric_cards_pin_the_gradio_of_their_app():
    for name in METRICS:
        assert f"sdk_version: {SDK_VERSION}\n" in render_metric_card(name)
    assert "gr.inputs" not in render_space_app("artifact_f1")  # removed in gradio 4; evaluate's widget uses it


@pytest.mark.parametrize("name", METRICS)
def test_card_usage_snippet_runs(name):
    card = render_metric_card(name)
    usage = card.split("## How to Use", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    # our own card text, not model output
    exec(compile(usage, f"{name} README How to Use", "exec"), namespace)
    assert isinstance(namespace["results"], dict) and "per_class" in namespace["results"]
