"""A build killed with SIGKILL while writing leaves its ``.OUT_DIR.tmp-*`` folder; the next build removes
it (and only folders a build of ours provably left), and reports the others."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from synartifact_hf.cli import main
from synartifact_hf.data import SAMPLE_DIR
from synartifact_hf.data.staging import MARKER, make_staging, sweep_stale_staging

# The child runs a real build; once every parquet file is written (before the card and the rename) it
# says so and waits, so that the SIGKILL lands mid-build every time rather than by luck of timing.
_CHILD = """
import sys, time
from pathlib import Path
import synartifact_hf.data.export as export

verify = export._verify_parquet
def pause_after_writing(staging, files, rows):
    verify(staging, files, rows)
    Path(sys.argv[3]).write_text(str(staging))
    time.sleep(600)
export._verify_parquet = pause_after_writing
export.build_dataset(sys.argv[1], sys.argv[2], progress=False)
"""


def _killed_build(out: Path, tmp_path: Path) -> tuple[Path, int]:
    ready = tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(SAMPLE_DIR), str(out), str(ready)], env=env)
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():
            assert child.poll() is None, f"the build exited early with {child.returncode}"
            assert time.monotonic() < deadline, "the build never reached the pause point"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return Path(ready.read_text()), child.pid


def test_sigkilled_build_leaves_a_temp_folder_that_the_next_build_removes(tmp_path, capsys):
    out = tmp_path / "site" / "synartifact-1k"
    staging, pid = _killed_build(out, tmp_path)
    # What kill -9 leaves: the hidden sibling with the written parquet files and our marker, no OUT_DIR.
    assert staging.parent == out.parent and staging.name.startswith(".synartifact-1k.tmp-")
    assert (staging / MARKER).is_file() and list(staging.glob("*/*.parquet"))
    assert not out.exists()
    # Siblings that must survive: a folder with our naming but no marker, and one whose build still runs
    # (this test process, its real start time in the marker).
    foreign = out.parent / ".synartifact-1k.tmp-notours"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("someone else's")
    running = make_staging(out)

    assert main(["build-dataset", str(SAMPLE_DIR), str(out), "--configs", "default"]) == 0
    printed = capsys.readouterr().out
    assert not staging.exists()
    assert f"removed: {staging} (pid {pid} that wrote it is gone)" in printed
    assert (foreign / "keep.txt").read_text() == "someone else's"
    assert f"left alone: {foreign} (no {MARKER} marker" in printed
    assert running.is_dir() and f"left alone: {running} (a build is still writing it (pid {os.getpid()}" in printed
    assert datasets.load_dataset(str(out))["train"].num_rows == 12
    assert not (out / MARKER).exists()  # the marker never reaches the published folder
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, foreign.name, running.name])


def _marked(out: Path, **changes) -> Path:
    folder = make_staging(out)
    marker = json.loads((folder / MARKER).read_text())
    marker.update(changes)
    (folder / MARKER).write_text(json.dumps(marker))
    return folder


@pytest.mark.parametrize(
    ("changes", "removed", "reason"),
    [
        ({"pid_start": "1"}, True, "now belongs to another process"),
        ({"boot_id": "an-earlier-boot"}, True, "before this machine last booted"),
        ({"host": socket.gethostname() + "-elsewhere"}, False, "that build may still run"),
        ({"tool": "something else"}, False, "no .synartifact-build.json marker"),
        ({}, False, "still writing it"),
    ],
)
def test_sweep_decides_from_the_marker(tmp_path, changes, removed, reason):
    if "pid_start" in changes and not Path(f"/proc/{os.getpid()}/stat").exists():
        pytest.skip("process start times need /proc")
    out = tmp_path / "synartifact-1k"
    folder = _marked(out, **changes)
    (found,) = sweep_stale_staging(out)
    assert found.path == folder and found.removed is removed and reason in found.reason
    assert folder.exists() is not removed


def test_sweep_reports_a_previous_out_dir_left_by_a_killed_swap(tmp_path):
    out = tmp_path / "synartifact-1k"
    old = tmp_path / ".synartifact-1k.old-1234abcd"
    old.mkdir()
    (found,) = sweep_stale_staging(out)
    assert not found.removed and "delete it yourself" in found.reason and old.is_dir()
