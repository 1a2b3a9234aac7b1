"""Scale-out: shares, the streamed merge of part files, and `classify` / `evaluate` / `curate` under real
`torchrun` with 2 CPU processes (gloo). Tiny random LLaVA, 4-token answers: mechanics only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synartifact_hf.cli import main
from synartifact_hf.scaleout import cut_torn_tail, merge_json_lines, share

TORCHRUN = Path(sys.executable).with_name("torchrun")
needs_torchrun = pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun not found next to the Python executable")


def _images(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.RandomState(i)
        Image.fromarray(rng.randint(0, 255, (24 + i % 7, 30, 3), dtype=np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def _lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _kill_9(proc):
    """SIGKILL torchrun and its workers: torchrun starts each worker in a session of its own, so
    killing torchrun's process group would leave them running."""
    import psutil

    try:
        family = [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    proc.communicate()


def _torchrun(*args, nproc=2, timeout=240, wait=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).parents[1]))
    proc = subprocess.Popen(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", str(nproc), "-m", "synartifact_hf.cli", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )
    if not wait:
        return proc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_9(proc)
        pytest.fail(f"torchrun {args[0]} did not finish in {timeout} s")
    assert proc.returncode == 0, stderr[-4000:]
    return stdout


def test_shares_are_disjoint_equal_and_cover_everything():
    for count in (0, 1, 5, 12, 13):
        for world in (1, 2, 3, 8):
            shares = [share(count, rank, world) for rank in range(world)]
            assert [i for s in shares for i in s] == list(range(count))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_merge_orders_dedupes_keeps_unknown_keys_and_drops_torn_lines(tmp_path):
    output = tmp_path / "out.jsonl"
    order = [f"k{i}" for i in range(6)]
    output.write_text("".join(json.dumps({"image": k, "src": "out"}) + "\n" for k in ("k1", "stale")))
    part0 = tmp_path / "out.jsonl.part-00000"
    part1 = tmp_path / "out.jsonl.part-00001"
    part0.write_text("".join(json.dumps({"image": k, "src": "p0"}) + "\n" for k in ("k0", "k1", "k4")))
    part1.write_text(json.dumps({"image": "k5", "src": "p1"}) + "\n" + json.dumps({"image": "k2"})[:7])
    cut_torn_tail(part1)
    assert part1.read_text().count("\n") == 1 and part1.read_text().endswith("\n")
    assert merge_json_lines(output, [part0, part1], iter(order)) == 5
    merged = _lines(output)
    # Input order, output's copy of k1 wins, the key not in the order (from an older run) is kept last.
    assert [(r["image"], r["src"]) for r in merged] == [("k0", "p0"), ("k1", "out"), ("k4", "p0"),
                                                       ("k5", "p1"), ("stale", "out")]
    assert not part0.exists() and not part1.exists()
    with pytest.raises(ValueError, match=r"part-00002:1 is not JSON"):
        bad = tmp_path / "out.jsonl.part-00002"
        bad.write_text("{nope\n")
        merge_json_lines(output, [bad], order)


@needs_torchrun
def test_classify_on_two_processes_equals_one_process(tiny_llava_path, tmp_path, capsys):
    folder = _images(tmp_path / "imgs", 12)
    common = ["--model", tiny_llava_path, "--max-new-tokens", "4", "--batch-size", "2"]
    stdout = _torchrun("classify", folder, "--output", tmp_path / "two.jsonl", *common)
    two = _lines(tmp_path / "two.jsonl")
    assert len(two) == 12  # the bug: each process classified every image (24 lines)
    assert stdout.count("two.jsonl: 12 image(s) (12 new, 0 already done)") == 1  # one summary, whole file
    assert not list(tmp_path.glob("two.jsonl.part-*"))
    assert main(["classify", str(folder), "--output", str(tmp_path / "one.jsonl"), *map(str, common)]) == 0
    assert two == _lines(tmp_path / "one.jsonl")  # same records, same (input) order


@needs_torchrun
def test_classify_resumes_after_kill_9_with_another_number_of_processes(tiny_llava_path, tmp_path, capsys):
    folder = _images(tmp_path / "imgs", 24)
    output = tmp_path / "out.jsonl"
    args = ["classify", folder, "--output", output, "--model", tiny_llava_path, "--max-new-tokens", "16",
            "--batch-size", "1"]
    proc = _torchrun(*args, wait=False)
    parts = [tmp_path / f"out.jsonl.part-{rank:05d}" for rank in (0, 1)]
    deadline = time.monotonic() + 240
    try:
        # Kill everything as soon as both processes have written a line: a crash mid-run.
        while not all(p.is_file() and p.read_bytes().count(b"\n") >= 1 for p in parts):
            assert not output.exists() and proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no part files appeared in 240 s"
            time.sleep(0.01)
    finally:
        _kill_9(proc)
    assert not output.exists()
    # A process killed mid-write leaves half a line; make sure there is one.
    with parts[1].open("a") as f:
        f.write('{"image": "/half/a/line", "lab')
    done = {}
    for part in parts:
        for line in part.read_text().splitlines():
            if line.endswith("}"):
                record = json.loads(line)
                done[record["image"]] = record
    keys = {r["image"] for r in done.values()}
    assert len(done) >= 2 and len(keys) == len(done)  # disjoint shares
    capsys.readouterr()
    # Rerun with one process: the parts' records are kept as they are, the rest is computed.
    assert main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    assert f"({24 - len(done)} new, {len(done)} already done)" in out
    merged = _lines(output)
    expected = sorted(str(p.resolve()) for p in folder.glob("*.png"))
    assert [r["image"] for r in merged] == expected  # one line per input, input order
    assert all(r == done[r["image"]] for r in merged if r["image"] in done)
    assert not list(tmp_path.glob("out.jsonl.part-*"))


@needs_torchrun
def test_evaluate_on_two_processes_equals_one_process(tiny_llava_path, tmp_path):
    from synartifact_hf.data.export import build_dataset
    from synartifact_hf.data.sample import SAMPLE_DIR

    folder = tmp_path / "synartifact"
    build_dataset(SAMPLE_DIR, folder, configs=["classification"], progress=False)
    common = ["--max-new-tokens", "6", "--batch-size", "2"]
    stdout = _torchrun("evaluate", tiny_llava_path, folder, "--output-dir", tmp_path / "two", *common)
    assert stdout.count("Report written to") == 1
    assert main(["evaluate", str(tiny_llava_path), str(folder), "--output-dir", str(tmp_path / "one"), *common]) == 0
    one, two = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "two"))
    assert one["num_examples"] == two["num_examples"] > 2
    assert one["metrics"] == two["metrics"]
    predictions = (tmp_path / "two" / "predictions.jsonl").read_text()
    assert predictions == (tmp_path / "one" / "predictions.jsonl").read_text()
    assert len({r["generated_text"] for r in map(json.loads, predictions.splitlines())}) > 1  # not all alike


@needs_torchrun
def test_curate_on_two_processes_equals_one_process(tiny_llava_path, tmp_path):
    from datasets import load_dataset

    folder = _images(tmp_path / "imgs", 6)
    common = ["--model", tiny_llava_path, "--max-new-tokens", "4", "--keep", "all", "--rows-per-cache-file", "2",
              "--batch-size", "2"]
    stdout = _torchrun("curate", folder, "--output-dir", tmp_path / "two", "--cache-dir", tmp_path / "c2", *common)
    assert stdout.count("kept 6 of 6 image(s)") == 1
    assert len(list((tmp_path / "c2").glob("synartifact-labels-*.arrow"))) == 3
    assert main(["curate", str(folder), "--output-dir", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "c1"),
                 *map(str, common)]) == 0
    one, two = (load_dataset(str(tmp_path / d), split="train") for d in ("one", "two"))
    assert one.remove_columns("image").to_list() == two.remove_columns("image").to_list()
    assert two["file_name"] == sorted(p.name for p in folder.glob("*.png"))
