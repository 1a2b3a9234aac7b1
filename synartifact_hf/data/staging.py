"""The temporary sibling folder a build writes into, and what a killed build leaves behind.

``build_dataset`` writes ``OUT_DIR``'s content into ``.OUT_DIR.tmp-<hex>`` next to it and renames it
into place at the end, so a failed build leaves nothing half-written. ``kill -9`` (or a power cut)
skips every cleanup, though, and the folder stays: megabytes on the sample, gigabytes on the release.

Each staging folder therefore carries a marker file, :data:`MARKER`, naming the process that writes
it (pid, host, boot id, the process's start time). Before writing, the next build of the same
``OUT_DIR`` looks at its ``.OUT_DIR.tmp-*`` siblings and

- removes those whose marker proves they are ours and stale: written on this host by a process that is
  gone (pid not running, a zombie, a different boot, or the pid now belongs to a process that started
  at another time);
- reports, and never touches, every other one: no marker (not written by this code, or by a build that
  was between removing its marker and the final rename), a marker from another host (a shared disk:
  that build may still run), or a build that is still running.

``.OUT_DIR.old-*`` siblings (the previous ``OUT_DIR``, if a build died during the final swap) carry no
marker and are reported, never removed: one may be the only complete copy.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MARKER", "StaleFolder", "make_staging", "release_staging", "sweep_stale_staging", "swap_into_place"]

logger = logging.getLogger(__name__)

MARKER = ".synartifact-build.json"
_TOOL = "synartifact-hf build-dataset"


@dataclass(frozen=True)
class StaleFolder:
    """A leftover sibling of ``OUT_DIR``: removed, or left alone with the reason."""

    path: Path
    removed: bool
    reason: str

    def __str__(self) -> str:
        return f"{'removed' if self.removed else 'left alone'}: {self.path} ({self.reason})"


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start time in clock ticks since boot)`` from ``/proc/<pid>/stat``; None without /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields resume after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], fields[19]


def _owner() -> dict:
    stat = _proc_stat(os.getpid())
    return {
        "tool": _TOOL,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid_start": stat[1] if stat else None,
        "created": time.time(),
    }


def make_staging(out_dir: Path) -> Path:
    """Create ``.OUT_DIR.tmp-<hex>`` next to ``out_dir``, marked as this process's."""
    staging = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    (staging / MARKER).write_text(json.dumps(_owner()), encoding="utf-8")
    return staging


def release_staging(staging: Path) -> None:
    """Drop the marker just before the folder goes live (it must not end up in ``OUT_DIR``)."""
    (staging / MARKER).unlink(missing_ok=True)


def swap_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``, replacing an existing ``out_dir`` (kept until the rename worked)."""
    release_staging(staging)
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
    out_dir.rename(old)
    try:
        staging.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    if stat is not None:
        return stat[0] not in ("Z", "X")  # a zombie has exited; only its exit status is left
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _why_stale(marker: dict) -> str | None:
    """Why the marked build is certainly over, or None when it may still run."""
    pid = marker["pid"]
    boot = _boot_id()
    if marker.get("boot_id") and boot and marker["boot_id"] != boot:
        return f"written by pid {pid} before this machine last booted"
    if not _pid_alive(pid):
        return f"pid {pid} that wrote it is gone"
    stat = _proc_stat(pid)
    if marker.get("pid_start") and stat and stat[1] != marker["pid_start"]:
        return f"pid {pid} that wrote it is gone (the pid now belongs to another process)"
    return None


def _read_marker(folder: Path) -> dict | None:
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("tool") != _TOOL:
        return None
    if not isinstance(marker.get("pid"), int) or not isinstance(marker.get("host"), str):
        return None
    return marker


def _inspect(folder: Path) -> StaleFolder:
    if folder.is_symlink() or not folder.is_dir():
        return StaleFolder(folder, False, "not a folder written by a build")
    marker = _read_marker(folder)
    if marker is None:
        return StaleFolder(folder, False, f"no {MARKER} marker: not provably written by a build of ours")
    if marker["host"] != socket.gethostname():
        return StaleFolder(
            folder, False, f"written on host {marker['host']!r} by pid {marker['pid']}; that build may still run"
        )
    reason = _why_stale(marker)
    if reason is None:
        return StaleFolder(folder, False, f"a build is still writing it (pid {marker['pid']} is running)")
    shutil.rmtree(folder)
    return StaleFolder(folder, True, reason)


def sweep_stale_staging(out_dir: Path) -> list[StaleFolder]:
    """Remove the stale staging folders of ``out_dir`` that a build of ours wrote; report the others.

    Returns one :class:`StaleFolder` per leftover sibling found (removed or not), each also logged.
    """
    parent = out_dir.parent
    if not parent.is_dir():
        return []
    found = []
    for folder in sorted(parent.glob(f".{out_dir.name}.tmp-*")):
        found.append(_inspect(folder))
    for folder in sorted(parent.glob(f".{out_dir.name}.old-*")):
        found.append(StaleFolder(folder, False, f"a previous {out_dir.name} left by a build that died while "
                                               "swapping it out; check it and delete it yourself"))
    for item in found:
        (logger.info if item.removed else logger.warning)("stale build folder %s", item)
    return found
