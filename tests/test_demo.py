"""The README's demo command, run in-process on the embedded sample with the tiny random model: the
before/after table (fine-tuning makes the answers parse), the rewards of both, DDPO's reward curve and the
index; and a given --model is only evaluated unless asked."""

import contextlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from synartifact_hf import cli
from synartifact_hf.demo.cli_demo import RANDOM_MODEL_WARNING


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The default demo (the recipe a newcomer runs), with 2 DDPO epochs instead of 4 to save time."""
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli.main(["demo", "--output-dir", str(out), "--ddpo-epochs", "2"])
    return code, out, printed.getvalue()


def test_demo_runs_end_to_end(demo_run):
    code, out, _ = demo_run
    assert code == 0
    comparison = json.loads((out / "comparison.json").read_text())
    before, after = comparison["rows"]
    assert before["name"].startswith("before") and after["name"].startswith("after: fine-tuned (full")
    # Random weights answer gibberish; after SFT the answers are option lists the parser reads.
    assert after["parse_rate"] > before["parse_rate"]
    assert after["parse_rate"] >= 0.5
    assert any(answer.startswith("1. ") for answer in after["answers"])
    n = before["num_examples"]
    assert n == after["num_examples"] == len(comparison["image_ids"]) > 0
    for row in (before, after):  # Eq. 4 of every answer, within the reward's bounds [0, 2]
        assert len(row["rewards"]) == n and all(0.0 <= r <= 2.0 for r in row["rewards"])
        assert row["reward_mean"] == pytest.approx(sum(row["rewards"]) / n)
    assert len(comparison["reference_rewards"]) == n

    table = (out / "comparison.md").read_text()
    assert "A toy, not the paper's result" in table
    assert "| Classifier | Parsed | Acc. | Prec. | Rec. | F1 | mean r (Eq. 4) |" in table
    assert f"| {before['name']} | {100 * before['parse_rate']:.1f} |" in table
    assert f"| {after['name']} | {100 * after['parse_rate']:.1f} |" in table

    history = json.loads((out / "ddpo" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert all(0.0 <= h["reward_mean"] <= 2.0 for h in history)
    with Image.open(out / "ddpo" / "reward_curve.png") as im:
        assert im.size[0] > 300
    assert (out / "ddpo" / "lora" / "pytorch_lora_weights.safetensors").is_file()

    index = (out / "README.md").read_text()
    for path in ("comparison.md", "evaluation/before/report.md", "evaluation/after/report.md",
                 "evaluation/after/per_class_scores.png", "ddpo/reward_curve.png"):
        assert f"]({path})" in index, path
    # every figure and report the run wrote is listed
    for path in out.rglob("*.png"):
        assert f"]({path.relative_to(out).as_posix()})" in index, path
    assert "| **total** |" in index
    assert (out / "finetuned-classifier" / "model.safetensors").is_file()


def test_demo_says_what_it_runs(demo_run):
    """The printout: the toy warning, numbered steps with elapsed time, the fine-tuning mode, the table."""
    _, out, printed = demo_run
    assert RANDOM_MODEL_WARNING in printed
    assert "A toy, not the paper's result" in (out / "README.md").read_text()
    for number in range(1, 8):
        assert f"=== [{number}/7] " in printed, number
    assert "elapsed)" in printed
    assert "Fine-tuning mode: full (" in printed
    assert "| Classifier | Parsed | Acc. | Prec. | Rec. | F1 | mean r (Eq. 4) |" in printed
    assert "mean reward per epoch: [" in printed


def test_given_model_is_only_evaluated(demo_run, tmp_path, capsys):
    """`make demo MODEL=...`: no fine-tuning, no DDPO unless asked; one row, and the index still lists it."""
    first = demo_run[1]
    model = Path(first) / "finetuned-classifier"
    assert cli.main(["demo", "--model", str(model), "--output-dir", str(tmp_path), "--max-new-tokens", "8"]) == 0
    printed = capsys.readouterr().out
    assert "Fine-tune on the train split: skipped" in printed and "DDPO with the classifier's reward: skipped" in printed
    assert RANDOM_MODEL_WARNING not in printed
    rows = json.loads((tmp_path / "comparison.json").read_text())["rows"]
    assert [row["name"] for row in rows] == [f"`{model}`"]
    assert not (tmp_path / "finetuned-classifier").exists() and not (tmp_path / "ddpo").exists()
    assert "](evaluation/before/report.md)" in (tmp_path / "README.md").read_text()


def test_demo_compares_the_tiny_sd_before_and_after_ddpo(demo_run):
    """eval-generator on the tiny SD without and with the DDPO LoRA (same prompts and seeds), then
    compare-generators; the printout calls it a toy."""
    _, out, printed = demo_run
    folders = out / "generator-eval"
    settings = [json.loads((folders / name / "generation.json").read_text()) for name in ("before", "after")]
    assert settings[0]["lora"] is None and settings[1]["lora"].endswith("lora")
    assert settings[0]["classifier"] == settings[1]["classifier"]
    result = json.loads((folders / "before-vs-after" / "comparison.json").read_text())
    assert result["pairs"] == 8 and result["prompts"] == 4
    assert 0.0 <= result["artifact_rate"]["p_mcnemar"] <= 1.0
    assert "before vs after DDPO" in printed and "A toy" in printed


def test_reference_answers_are_read_without_decoding_images(tmp_path, monkeypatch):
    import datasets
    from datasets.features import Image as ImageFeature

    from synartifact_hf.data import build_sample_dataset
    from synartifact_hf.demo.cli_demo import reference_answers

    folder = build_sample_dataset(tmp_path / "synartifact-1k", configs=["classification"], progress=False)
    test = datasets.load_dataset(str(folder), "classification", split="test")
    expected = [row["completion"][0]["content"][0]["text"] for row in test]
    decoded = []
    decode = ImageFeature.decode_example
    monkeypatch.setattr(ImageFeature, "decode_example",
                        lambda self, value, token_per_repo_id=None: decoded.append(value) or decode(self, value))
    assert reference_answers(test) == expected and all(text.strip() for text in expected)
    assert decoded == []
