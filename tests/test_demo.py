"""The README's demo command, run in-process on the embedded sample with the tiny random model."""

import json

from synartifact_hf import cli
from synartifact_hf.demo import RANDOM_MODEL_WARNING


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert cli.main(["demo", "--output-dir", str(tmp_path), "--max-new-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    assert RANDOM_MODEL_WARNING in printed  # offline default says its predictions are meaningless
    assert "You are my assistant to analyze this image." in printed
    assert "#### Images per class" in printed  # the dataset card statistics
    report = json.loads((tmp_path / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 6  # the sample's test split
    assert (tmp_path / "evaluation" / "per_class_scores.png").stat().st_size > 0
    assert (tmp_path / "synartifact-1k" / "README.md").is_file()
