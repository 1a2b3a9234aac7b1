"""examples/train_flow_grpo.py end to end with both recipes on the tiny SD3 and FLUX pipelines and the tiny VLM
classifier (real ArtifactReward, MiniLM BERTScore): the pipeline class comes from model_index.json; LoRA
saved and loadable by the pipeline's own loader, reward curve, before/after grid, history; the recipes parse
with the reference's published settings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def script():
    """examples/train_flow_grpo.py as a module (registered in sys.modules: its dataclasses' string annotations
    resolve through it)."""
    name, path = "_example_train_flow_grpo", EXAMPLES / "train_flow_grpo.py"
    sys.modules[name] = module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    module.__spec__.loader.exec_module(module)
    return module


def parse(script, recipe, *overrides):
    return script.make_parser().parse_args_and_config(["--config", str(EXAMPLES / "recipes" / recipe), *overrides])


def test_recipes_have_the_reference_settings(script):
    args, config = parse(script, "flow_grpo_sd35m_lora.yaml")
    assert args.pretrained_model == "stabilityai/stable-diffusion-3.5-medium"
    assert (config.resolution, config.sample_num_steps, config.num_images_per_prompt) == (512, 10, 24)
    assert (config.noise_level, config.beta, config.clip_range, config.train_learning_rate) == (0.7, 0.01, 1e-4, 3e-4)
    assert config.window_range == (0, 9) and config.num_train_timesteps == 9 and config.guidance_scale == 4.5
    assert (config.lora_rank, config.lora_alpha) == (32, 64)
    args, config = parse(script, "flow_grpo_flux_lora.yaml")
    assert args.pretrained_model == "black-forest-labs/FLUX.1-dev"
    assert (config.resolution, config.sample_num_steps, config.num_images_per_prompt) == (512, 6, 24)
    assert (config.noise_level, config.beta, config.embedded_guidance_scale, config.mixed_precision) == (0.9, 0.0, 3.5, "bf16")
    assert config.gradient_checkpointing and config.offload_text_encoders and not config.train_cfg
    # the window flags from the command line (Flow-GRPO-Fast)
    _, config = parse(script, "flow_grpo_sd35m_lora.yaml", "--sde_window_size", "2", "--sde_window_range", "0", "5")
    assert config.window_range == (0, 5) and config.num_train_timesteps == 2


@pytest.mark.parametrize("recipe,model,run_name", [
    ("flow_grpo_sd35m_lora.yaml", "tiny_sd3_path", "sd35m-flow-grpo-artifact"),
    ("flow_grpo_flux_lora.yaml", "tiny_flux_path", "flux-flow-grpo-artifact"),
], ids=["sd35m", "flux"])
def test_train_flow_grpo_example_end_to_end(script, tmp_path, recipe, model, run_name, tiny_llava_path, request):
    from PIL import Image

    from synartifact_hf.grpo import flow_pipeline_class

    path = request.getfixturevalue(model)
    args, config = parse(
        script, recipe,
        "--pretrained_model", str(path), "--classifier", str(tiny_llava_path), "--classifier_max_new_tokens", "4",
        "--output_dir", str(tmp_path / "out"), "--logdir", str(tmp_path / "logs"),
        "--eval_prompts", "goldfish, Carassius auratus", "tree frog, tree-frog",
        "--resolution", "32", "--num_epochs", "1", "--sample_num_steps", "2", "--sde_window_range", "0", "2",
        "--sde_window_size", "0", "--num_images_per_prompt", "2", "--sample_batch_size", "2",
        "--sample_num_batches_per_epoch", "1", "--train_batch_size", "2", "--train_gradient_accumulation_steps", "1",
        "--mixed_precision", "no", "--save_freq", "1", "--train_learning_rate", "1e-2",
    )
    result = script.main(args, config)
    out = Path(result["output_dir"])
    assert {p.name for p in out.iterdir()} == {"pytorch_lora_weights.safetensors", "reward_curve.png", "before_after.png",
                                              "history.json"}
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0]
    with Image.open(out / "before_after.png") as im:
        assert im.size[0] > 2 * 128
    assert len(result["grid_rewards"][0]) == len(result["grid_rewards"][1]) == 2
    cls = flow_pipeline_class(str(path))
    pipe = cls.from_pretrained(path)
    pipe.load_lora_weights(out)  # StableDiffusion3Pipeline / FluxPipeline's own loader
    assert any("lora" in n for n, _ in pipe.transformer.named_parameters())
    assert (tmp_path / "logs" / run_name / "checkpoints" / "checkpoint_0" / "trainer_state.json").is_file()
