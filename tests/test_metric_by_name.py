"""``evaluate.load("artifact_f1")`` / ``("artifact_iou")`` by bare name, offline, after the README's set-up
(``synartifact-hf install-metrics``), each step in a fresh process and a fresh working directory; and a
module that evaluate fetched from the Hub under one of those names is never touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from evaluate.loading import _create_importable_file

import synartifact_hf.metrics
from synartifact_hf.cli import main
from synartifact_hf.metrics import install, uninstall
from synartifact_hf.metrics.evaluate_cache import module_cache_folder

_LOAD_BY_NAME = textwrap.dedent(
    """
    import evaluate
    f1 = evaluate.load("artifact_f1")
    print(type(f1).__module__)
    print(round(f1.compute(predictions=[[3], ["No artifacts"]], references=[[3, 4], [13]])["f1"], 4))
    iou = evaluate.load("artifact_iou")
    box = {"boxes": [[0, 0, 2, 2]], "labels": ["Localized blur"]}
    print(type(iou).__module__, iou.compute(predictions=[box], references=[box])["mean_iou"])
    """
)
# One process for both (each fresh process pays evaluate's import): the bare name fails without the
# set-up, then the set-up itself, through the command's entry point.
_BEFORE_THEN_SET_UP = textwrap.dedent(
    """
    import sys
    import evaluate
    try:
        evaluate.load("artifact_f1")
        print("loaded")
    except FileNotFoundError:
        print("FileNotFoundError")
    from synartifact_hf.cli import main
    sys.exit(main(["install-metrics"]))
    """
)


def _fresh_process(args, home: Path, tmp_path: Path, name: str) -> subprocess.CompletedProcess:
    cwd = tmp_path / name  # a fresh, empty working directory: no ./artifact_f1 folder to find
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_MODULES_CACHE", "HF_EVALUATE_CACHE", "HF_METRICS_CACHE", "HF_DATASETS_CACHE")}
    env.update(HF_HOME=str(home), HF_HUB_OFFLINE="1", HF_EVALUATE_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_bare_names_load_offline_after_install_metrics(tmp_path):
    home = tmp_path / "hf-home"
    installed = _fresh_process(["-c", _BEFORE_THEN_SET_UP], home, tmp_path, "set-up").stdout.splitlines()
    assert installed[0] == "FileNotFoundError"  # what a user gets without the set-up
    assert sum(": installed (" in line for line in installed[1:]) == 2

    after = _fresh_process(["-c", _LOAD_BY_NAME], home, tmp_path, "after").stdout.splitlines()
    assert after[0].startswith("evaluate_modules.metrics.evaluate-metric--artifact_f1.")
    assert after[1] == "0.8333"
    assert after[2].startswith("evaluate_modules.metrics.evaluate-metric--artifact_iou.") and after[2].endswith(" 1.0")
    # the copy sits where evaluate's offline fallback reads, under HF_HOME
    assert (home / "modules" / "evaluate_modules" / "metrics" / "evaluate-metric--artifact_f1").is_dir()


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(path.relative_to(folder).as_posix().encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_a_module_evaluate_fetched_from_the_hub_is_never_touched(tmp_path, capsys):
    cache = tmp_path / "modules"
    # What evaluate's HubEvaluationModuleFactory writes after downloading evaluate-metric/artifact_f1:
    # evaluate's own function, fed a "downloaded" script that differs from ours.
    downloaded = tmp_path / "downloads"
    shutil.copytree(synartifact_hf.metrics.path("artifact_f1"), downloaded)
    script = downloaded / "artifact_f1.py"
    script.write_text("# the Hub's version\n" + script.read_text())
    _create_importable_file(local_path=str(script), local_imports=[("multilabel", str(downloaded / "multilabel.py"))],
                            additional_files=[], dynamic_modules_path=str(cache / "evaluate_modules"),
                            module_namespace="metrics", name="evaluate-metric/artifact_f1", download_mode=None)
    hub_folder = module_cache_folder("artifact_f1", cache)
    before = _tree_digest(hub_folder)

    results = {r.name: r for r in install(modules_cache=cache)}
    assert results["artifact_f1"].status == "skipped" and "fetched from the Hub" in results["artifact_f1"].detail
    assert results["artifact_iou"].status == "installed"
    assert _tree_digest(hub_folder) == before
    # the command says so in its exit status
    assert main(["install-metrics", "--modules-cache", str(cache)]) == 1
    assert "artifact_f1: skipped" in capsys.readouterr().out
    # uninstall removes ours only
    assert {r.name: r.status for r in uninstall(modules_cache=cache)} == {
        "artifact_f1": "not installed", "artifact_iou": "removed"}
    assert _tree_digest(hub_folder) == before
    assert not [p for p in module_cache_folder("artifact_iou", cache).iterdir() if p.is_dir()]


def test_reinstall_replaces_an_older_copy_of_ours(tmp_path):
    cache = tmp_path / "modules"
    (first,) = install(["artifact_iou"], modules_cache=cache)
    old = Path(first.path).with_name("0" * 64)  # an earlier version of ours (different code hash)
    shutil.copytree(first.path, old)
    shutil.rmtree(first.path)
    record = json.loads((old / "artifact_iou.json").read_text())
    assert record["installed by"].startswith("synartifact-hf")
    (again,) = install(["artifact_iou"], modules_cache=cache)
    assert again.status == "installed" and again.path == first.path
    assert sorted(p.name for p in Path(first.path).parent.iterdir() if p.is_dir()) == [Path(first.path).name]
    assert main(["install-metrics", "accuracy", "--modules-cache", str(cache)]) == 2
