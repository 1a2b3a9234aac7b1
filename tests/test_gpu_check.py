"""benchmarks/gpu_check.py --smoke: the GPU check's own code (pipeline, DDPO SD-1.5 and SDXL, Flow-GRPO SD3.5 and FLUX,
reward, served rows) at tiny shapes on CPU, so that the full-size run on a GPU machine does not fail on a code path
nobody ran."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_smoke_prints_one_table():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.splitlines()
    assert any(line.startswith("gpu_check --smoke on CPU") for line in lines)
    rows = [line.strip("|").split("|") for line in lines if line.startswith("| ") and "---" not in line]
    header, rows = rows[0], rows[1:]
    assert [c.strip() for c in header] == ["check", "metric", "value", "unit"]
    table = {(check.strip(), metric.strip()): (float(value), unit.strip()) for check, metric, value, unit in rows}
    assert all(math.isfinite(v) and v > 0 for v, _ in table.values()), table
    assert {c for c, _ in table} == {"pipeline", "ddpo", "ddpo_sdxl", "flow_grpo_sd35", "flow_grpo_flux", "reward", "served"}
    assert table[("pipeline", "batch 1")][1] == table[("pipeline", "batch 2")][1] == "images/s"
    assert ("pipeline", "batch 2: prefill") in table and ("pipeline", "batch 2: decoding (2 tokens)") in table
    assert table[("pipeline", "return_scores / generation alone, batch 2")][1] == "x"
    assert table[("ddpo", "sampling, 2 DDIM steps, 32 px, batch 2")][1] == "s/image"
    assert table[("ddpo", "training, 2 timesteps")][1] == "s/image"
    sdxl = {metric for check, metric in table if check == "ddpo_sdxl"}
    assert {m.split(",")[0] for m in sdxl} == {"gradient checkpointing off", "gradient checkpointing on"}
    assert all(table[("ddpo_sdxl", m)][1] == "s/image" for m in sdxl)
    for check in ("flow_grpo_sd35", "flow_grpo_flux"):
        flow = {metric for c, metric in table if c == check}
        assert {m.split(":")[0] for m in flow} == {"text encoders on the device", "text encoders offloaded"}
        assert ("text encoders offloaded: training, 2-step window") in flow
    assert table[("reward", "answers/s, batch 2, 4-token answers")][1] == "answers/s"
    assert 0 < table[("reward", "BERTScore share of the reward's time")][0] < 100
    assert table[("served", "transformers serve, concurrency 2")][1] == "images/s"
    assert table[("served", "served / in-process at 2")][1] == "x"
