"""The committed locks (locks/*.txt, made by `make lock`) cover what pyproject.toml and locks/*.in ask for.

A dependency added to pyproject.toml without `make lock` fails here (by name and version), before a fresh
clone's `make test` would install a virtualenv that lacks it. pip's settings carried to uv are checked on
a made-up pip configuration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11, as the locks
ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "locks"
SELF = "synartifact-hf"
# lock -> (its .in file, the pyproject extras it resolves): as in the Makefile's `lock` target
LOCKED = {"dev.txt": ("dev.in", ["all", "dev"]), "trl023.txt": ("trl023.in", ["diffusion", "minilm"])}


def _pins(lock: Path) -> dict[str, Version]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if match:
            pins[canonicalize_name(match[1])] = Version(match[2])
    return pins


def _requirements(extras: list[str], in_file: Path) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    wanted, seen, todo = [Requirement(r) for r in project["dependencies"]], set(), list(extras)
    while todo:  # extras that name the package's own extras (all = train + diffusion + ...)
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in optional[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == SELF:
                todo += sorted(req.extras)
            else:
                wanted.append(req)
    for line in in_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            wanted.append(Requirement(line))
    env = {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux"}
    return [r for r in wanted if r.marker is None or r.marker.evaluate({**env, "extra": ""})]


@pytest.mark.parametrize("lock_name", sorted(LOCKED))
def test_lock_covers_pyproject(lock_name):
    in_name, extras = LOCKED[lock_name]
    pins = _pins(LOCKS / lock_name)
    assert len(pins) > 50, f"{lock_name}: {len(pins)} pins"
    problems = []
    for req in _requirements(extras, LOCKS / in_name):
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req} is not in locks/{lock_name}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req}: locks/{lock_name} has {version}")
    assert not problems, "run `make lock` and commit locks/: " + "; ".join(problems)


def test_locks_name_no_machine_path():
    for lock in LOCKS.glob("*.txt"):
        text = lock.read_text()
        assert "file:" not in text and not re.search(r"(^|\s)/[a-z]", text), f"{lock}: a local path in the lock"
        assert re.search(r"^torch==[0-9.]+\+cpu$", text, re.M), f"{lock}: torch is not pinned to its CPU build"


def test_pip_settings_become_uv_flags(tmp_path):
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nfind-links = /srv/wheels /srv/more\nextra-index-url = file:///srv/simple\n"
                      "constraint = /srv/caps.txt\n[install]\nfind-links = /srv/install-wheels\n")
    # pip reads PIP_CONFIG_FILE last, so it overrides the machine's files for these keys; PIP_* variables go
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": str(config)}

    def flags(command, **extra):
        out = subprocess.run([sys.executable, str(LOCKS / "uv_flags.py"), command], env={**env, **extra},
                             capture_output=True, text=True, check=True).stdout
        return out.split()

    # [install] wins over [global]; several indexes mean pip's best-match rule; constraints for installs only
    assert flags("sync") == ["--find-links", "/srv/install-wheels", "--extra-index-url", "file:///srv/simple",
                             "--index-strategy", "unsafe-best-match"]
    assert flags("install")[-4:] == ["--constraint", "/srv/caps.txt", "--index-strategy", "unsafe-best-match"]
    assert "--constraint" not in flags("compile")
    # the environment wins over pip's files, as in pip
    assert flags("sync", PIP_FIND_LINKS="/env/wheels")[:2] == ["--find-links", "/env/wheels"]
