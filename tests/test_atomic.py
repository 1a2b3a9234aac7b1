"""One atomic writer: a unique temporary sibling, renamed on success, removed on failure; and the
writers that used to do temp + rename by hand now leave nothing behind when they fail."""

from __future__ import annotations

import json
import os
import threading

import pytest

from synartifact_hf.atomic import atomic_path, write_text_atomic


def _siblings(folder):
    return sorted(p.name for p in folder.iterdir())


def test_success_replaces_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "report.json"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as handle:
            handle.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and _siblings(tmp_path) == ["report.json"]
    with atomic_path(target, "wb") as handle:
        handle.write(b"new")
    assert target.read_bytes() == b"new" and _siblings(tmp_path) == ["report.json"]
    # Written files get the usual permissions, not mkstemp's private 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_path_mode_keeps_the_suffix_for_writers_that_read_it(tmp_path):
    from PIL import Image

    target = tmp_path / "grid.png"
    with atomic_path(target, mode=None) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target
        Image.new("RGB", (2, 2)).save(tmp)  # PIL picks PNG from the suffix
    assert Image.open(target).format == "PNG" and _siblings(tmp_path) == ["grid.png"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_path(target, "a"):
            pass


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "index.txt"
    names, barrier = [], threading.Barrier(4)

    def write(i):
        with atomic_path(target) as handle:
            names.append(handle.name)
            barrier.wait()
            handle.write(str(i) * 1000)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 4
    assert target.read_text() in {str(i) * 1000 for i in range(4)} and _siblings(tmp_path) == ["index.txt"]


def test_failed_merge_leaves_no_temporary_file_and_keeps_the_parts(tmp_path, monkeypatch):
    from synartifact_hf import scaleout

    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({"image": "a"}) + "\n")
    part = tmp_path / "out.jsonl.part-00000"
    part.write_text(json.dumps({"image": "b"}) + "\n")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        scaleout.merge_json_lines(output, [part], ["a", "b"])
    assert _siblings(tmp_path) == ["out.jsonl", "out.jsonl.part-00000"]
    assert output.read_text() == json.dumps({"image": "a"}) + "\n"


def test_failed_torn_tail_cut_leaves_no_temporary_file(tmp_path, monkeypatch):
    from synartifact_hf import scaleout

    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps({"image": "a"}) + "\n" + '{"ima')
    real_replace = os.replace

    def failing_replace(src, dst):
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="I/O error"):
        scaleout.cut_torn_tail(path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert _siblings(tmp_path) == ["out.jsonl"]
    scaleout.cut_torn_tail(path)
    assert path.read_text() == json.dumps({"image": "a"}) + "\n"


def test_a_figure_whose_write_fails_leaves_no_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from synartifact_hf.viz import plot_class_distribution

    def failing_savefig(self, fname, **kwargs):
        with open(fname, "wb") as handle:
            handle.write(b"half a png")  # what a writer that dies mid-way leaves
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError, match="No space left"):
        plot_class_distribution({"train": {"Localized blur": 3}}, tmp_path / "chart.png")
    assert _siblings(tmp_path) == []
