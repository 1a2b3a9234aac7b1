"""Make ``evaluate.load("artifact_f1")`` / ``evaluate.load("artifact_iou")`` work as typed, offline.

How evaluate 0.4.6 resolves a bare name such as ``"artifact_f1"``: a local folder ``./artifact_f1/``
(with ``artifact_f1.py``) first, then the Hub repositories ``evaluate-metric/``,
``evaluate-comparison/`` and ``evaluate-measurement/artifact_f1``; when none answers (offline, or no
such repository) it falls back to the newest module it cached itself under
``$HF_MODULES_CACHE/evaluate_modules/metrics/evaluate-metric--artifact_f1/<64-hex hash>/artifact_f1.py``.
:func:`install` writes our module folders into exactly that place, in the layout evaluate's own loader
writes (same hash, ``__init__.py`` files, the ``<name>.json`` record), marked as ours. It is explicit
(nothing happens on ``import synartifact_hf``), idempotent, atomic per module, and never touches a
module that evaluate fetched from the Hub under that name: such a name is skipped and reported.
:func:`uninstall` removes our copies and nothing else.

>>> import tempfile
>>> cache = tempfile.mkdtemp()
>>> [(r.name, r.status) for r in install(modules_cache=cache)]
[('artifact_f1', 'installed'), ('artifact_iou', 'installed')]
>>> [(r.name, r.status) for r in install(modules_cache=cache)]
[('artifact_f1', 'up to date'), ('artifact_iou', 'up to date')]
>>> [(r.name, r.status) for r in uninstall(modules_cache=cache)]
[('artifact_f1', 'removed'), ('artifact_iou', 'removed')]
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import METRICS, path

__all__ = ["InstallResult", "install", "module_cache_folder", "uninstall"]

# Key added to the <name>.json record evaluate keeps next to each cached script; evaluate itself
# only reads the .py, so the extra key is how we tell our copies from Hub downloads.
_MARKER = "installed by"
_OWNER = "synartifact-hf"
_HASH_LENGTH = 64  # evaluate only considers sub-folders with 64-character names


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install` / :func:`uninstall` did for one metric.

    ``status``: "installed", "up to date", "skipped" (a module of that name fetched from the Hub is in
    evaluate's cache; ours was not written), "removed" or "not installed".
    """

    name: str
    status: str
    path: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.status} ({self.path}){': ' + self.detail if self.detail else ''}"


def module_cache_folder(name: str, modules_cache: str | os.PathLike | None = None) -> Path:
    """The folder evaluate's offline fallback reads for the bare name ``name``.

    ``modules_cache`` defaults to evaluate's own (``HF_MODULES_CACHE``, else ``$HF_HOME/modules``).
    """
    from evaluate import config

    cache = Path(modules_cache) if modules_cache is not None else Path(config.HF_MODULES_CACHE)
    return cache / config.MODULE_NAME_FOR_DYNAMIC_MODULES / "metrics" / f"evaluate-metric--{name}"


def _names(names: Iterable[str] | None) -> list[str]:
    chosen = list(METRICS if names is None else names)
    for name in chosen:
        path(name)  # KeyError naming the available metrics
    return chosen


def _versions(folder: Path, name: str) -> tuple[list[Path], list[Path]]:
    """(our copies, everything else) among the cached versions of ``name``."""
    ours, others = [], []
    if not folder.is_dir():
        return ours, others
    for version in sorted(p for p in folder.iterdir() if p.is_dir() and len(p.name) == _HASH_LENGTH):
        try:
            record = json.loads((version / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        mine = isinstance(record, dict) and str(record.get(_MARKER, "")).startswith(_OWNER)
        (ours if mine else others).append(version)
    return ours, others


def _module_files(name: str) -> list[Path]:
    """The module script and the sibling files it imports, as evaluate's local loader collects them."""
    from evaluate.loading import get_imports

    folder = Path(path(name))
    script = folder / f"{name}.py"
    siblings = [folder / f"{imported}.py" for kind, imported, _, _ in get_imports(str(script)) if kind == "internal"]
    return [script, *siblings]


def _owner() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{_OWNER} {version(_OWNER)}"
    except PackageNotFoundError:
        return _OWNER


def install(names: Iterable[str] | None = None, *, modules_cache: str | os.PathLike | None = None) -> list[InstallResult]:
    """Copy our metric modules into evaluate's module cache so that ``evaluate.load(name)`` finds them.

    Idempotent; an older copy of ours is replaced, a module fetched from the Hub is never touched
    (that name is "skipped"). Returns one :class:`InstallResult` per metric.
    """
    from evaluate.loading import files_to_hash
    from filelock import FileLock

    results = []
    for name in _names(names):
        folder = module_cache_folder(name, modules_cache)
        files = _module_files(name)
        digest = files_to_hash([str(f) for f in files])
        target = folder / digest
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder) + ".lock"):  # the lock evaluate's own loader takes for this folder
            ours, others = _versions(folder, name)
            if others:
                results.append(InstallResult(
                    name, "skipped", str(others[-1]),
                    f"evaluate's cache holds a module {name!r} that is not ours (fetched from the Hub); left "
                    f"untouched, so evaluate.load({name!r}) gives that one. Ours: "
                    f"evaluate.load(synartifact_hf.metrics.path({name!r}))",
                ))
                continue
            for parent in (folder.parent.parent, folder.parent, folder):
                (parent / "__init__.py").touch(exist_ok=True)
            if target in ours:
                results.append(InstallResult(name, "up to date", str(target)))
                continue
            staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=folder))
            try:
                for file in files:
                    shutil.copyfile(file, staging / file.name)
                (staging / "__init__.py").touch()
                record = {"original file path": str(files[0]), "local file path": str(target / files[0].name),
                          _MARKER: _owner()}
                (staging / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            for old in ours:
                shutil.rmtree(old, ignore_errors=True)
            results.append(InstallResult(name, "installed", str(target)))
    return results


def uninstall(names: Iterable[str] | None = None, *, modules_cache: str | os.PathLike | None = None) -> list[InstallResult]:
    """Remove the copies :func:`install` wrote (and only those) from evaluate's module cache."""
    results = []
    for name in _names(names):
        folder = module_cache_folder(name, modules_cache)
        ours, _ = _versions(folder, name)
        for version in ours:
            shutil.rmtree(version)
        status = "removed" if ours else "not installed"
        results.append(InstallResult(name, status, str(folder)))
    return results
