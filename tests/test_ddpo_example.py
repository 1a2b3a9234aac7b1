"""examples/train_ddpo.py end to end on the tiny SD and SDXL pipelines and the tiny VLM classifier (real
ArtifactReward, MiniLM BERTScore), each with its recipe: the pipeline class comes from model_index.json;
LoRA saved and loadable, reward curve, before/after grid, model card; and the recipes parse with the
paper's settings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("_example_train_ddpo", EXAMPLES / "train_ddpo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_recipe_has_the_paper_settings(script):
    args, config = script.make_parser().parse_args_and_config(
        ["--config", str(EXAMPLES / "recipes" / "ddpo_sd15_lora.yaml")]
    )
    assert args.pretrained_model == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert config.use_lora and config.train_learning_rate == pytest.approx(3e-4)
    assert config.samples_per_epoch == 24 == config.sample_batch_size * config.sample_num_batches_per_epoch
    # one optimizer step over the whole epoch: batch 4 x accumulation 6 = 24
    assert config.train_batch_size * config.train_gradient_accumulation_steps == 24


def test_sdxl_recipe_keeps_the_paper_settings_at_1024(script):
    args, config = script.make_parser().parse_args_and_config(
        ["--config", str(EXAMPLES / "recipes" / "ddpo_sdxl_lora.yaml")]
    )
    assert args.pretrained_model == "stabilityai/stable-diffusion-xl-base-1.0"
    assert config.use_lora and config.train_learning_rate == pytest.approx(3e-4) and config.resolution is None
    assert config.samples_per_epoch == 24 == config.train_batch_size * config.train_gradient_accumulation_steps
    assert config.gradient_checkpointing and config.mixed_precision == "fp16"


@pytest.mark.parametrize(
    "recipe,model,run_name",
    [("ddpo_sd15_lora.yaml", "tiny_sd_path", "sd15-ddpo-artifact"), ("ddpo_sdxl_lora.yaml", "tiny_sdxl_path", "sdxl-ddpo-artifact")],
    ids=["sd15", "sdxl"],
)


def test_train_ddpo_example_end_to_end(script, tmp_path, recipe, model, run_name, tiny_llava_path, request):
    from PIL import Image

    from synartifact_hf.ddpo import pipeline_class

    tiny_sd_path = request.getfixturevalue(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args, config = script.make_parser().parse_args_and_config(
            [
                "--config", str(EXAMPLES / "recipes" / recipe),
                "--pretrained_model", str(tiny_sd_path),
                "--classifier", str(tiny_llava_path),
                "--classifier_max_new_tokens", "8",
                "--output_dir", str(tmp_path / "out"),
                "--logdir", str(tmp_path / "logs"),
                "--eval_prompts", "goldfish, Carassius auratus", "tree frog, tree-frog",
                "--num_epochs", "2",
                "--sample_num_steps", "2",
                "--sample_batch_size", "2",
                "--sample_num_batches_per_epoch", "1",
                "--train_batch_size", "2",
                "--train_gradient_accumulation_steps", "1",
                "--mixed_precision", "no",
                "--gradient_checkpointing", "false",
                "--save_freq", "1",
                "--train_learning_rate", "1e-2",
            ]
        )
        result = script.main(args, config)
    finally:
        torch.set_num_threads(threads)
    out = Path(result["output_dir"])
    assert {p.name for p in out.iterdir()} == {
        "pytorch_lora_weights.safetensors", "reward_curve.png", "before_after.png", "README.md", "history.json",
    }
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    with Image.open(out / "reward_curve.png") as im:
        assert im.size[0] > 300
    with Image.open(out / "before_after.png") as im:
        assert im.size[0] > 2 * 256
    card = (out / "README.md").read_text()
    assert "{{" not in card and "library_name: diffusers" in card
    assert f"{history[0]['reward_mean']:.4f}" in card and "| images per epoch | 2 (" in card
    before, after = result["grid_rewards"]
    assert len(before) == len(after) == 2
    # the LoRA loads with diffusers' own loader
    cls = pipeline_class(str(tiny_sd_path))
    assert f"from diffusers import {cls.__name__}" in card
    pipe = cls.from_pretrained(tiny_sd_path)
    pipe.load_lora_weights(out)
    assert any("lora" in n for n, _ in pipe.unet.named_parameters())
    assert (tmp_path / "logs" / run_name / "checkpoints" / "checkpoint_1" / "trainer_state.json").is_file()
