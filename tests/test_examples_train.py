"""examples/train_classifier.py end to end on the tiny LLaVA and the embedded sample: each llm_mode trains
the right parts for 2 steps, answer-only loss, resume from a checkpoint, the saved model loads in the
pipeline, the model card is rendered with the evaluation, and every recipe parses."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _load_script(name):
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_script():
    return _load_script("train_classifier")


@pytest.fixture(scope="module")
def sample_dataset(tmp_path_factory):
    """The embedded sample built into a folder (classification + detection configs)."""
    from synartifact_hf.data import build_sample_dataset

    return build_sample_dataset(tmp_path_factory.mktemp("data") / "synartifact-1k",
                                configs=["classification", "detection"])


def _state(path):
    # Loaded through transformers: the file on disk uses the legacy LLaVA key layout.
    from transformers import AutoModelForImageTextToText

    return {k: v.detach().clone() for k, v in AutoModelForImageTextToText.from_pretrained(path).state_dict().items()}


def _parse(script, *argv):
    return script.make_parser().parse_args_and_config(args=[str(a) for a in argv])


def _train(script, model_path, dataset, out, *extra):
    args = _parse(
        script,
        "--model_name_or_path", model_path, "--dataset_name", dataset, "--output_dir", out,
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2",
        "--use_cpu", "true", "--bf16", "false", "--report_to", "none", "--max_length", "null",
        "--logging_steps", "1", "--seed", "0", "--dataloader_num_workers", "0",
        *extra,
    )
    script.main(*args)
    return args


def _changed(before, after, prefix):
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return {k: not torch.equal(before[k], after[k]) for k in keys}


@pytest.mark.parametrize("mode", ["frozen", "full", "lora"])
def test_each_mode_trains_the_right_parts(train_script, tiny_llava_path, sample_dataset, tmp_path, mode):
    out = tmp_path / f"run-{mode}"
    extra = ["--llm_mode", mode, "--evaluate_after_training", "false", "--save_strategy", "no"]
    if mode == "lora":
        extra += ["--lora_r", "4", "--lora_alpha", "8"]
    _train(train_script, tiny_llava_path, sample_dataset, out, *extra)
    before, after = _state(tiny_llava_path), _state(out)
    assert set(before) == set(after)

    assert not any(_changed(before, after, "model.vision_tower.").values()), "the vision tower must stay frozen"
    assert all(_changed(before, after, "model.multi_modal_projector.").values()), "the projector must train"
    lm = _changed(before, after, "model.language_model.")
    lm.update(_changed(before, after, "lm_head."))
    if mode == "frozen":
        assert not any(lm.values()), [k for k, v in lm.items() if v]
    elif mode == "full":
        assert sum(lm.values()) > len(lm) // 2
        assert lm["lm_head.weight"]
    else:
        # Merged LoRA: every adapted linear weight moved, nothing else in the LLM did.
        linear = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
        for key, moved in lm.items():
            assert moved == key.endswith(tuple(f"{name}.weight" for name in linear)), key
        adapter = json.loads((out / "lora_adapter" / "adapter_config.json").read_text())
        assert adapter["r"] == 4 and "model.multi_modal_projector" in adapter["modules_to_save"]
        assert not (out / "adapter_config.json").exists()  # the top level is a plain (merged) checkpoint
    card = (out / "README.md").read_text()
    assert f"| llm mode | `{mode}` |" in card and "Not evaluated in this run" in card


def test_completion_only_loss_masks_the_prompt(tiny_llava_path, sample_dataset, tmp_path):
    """SFTTrainer (TRL 1.16) on vision prompt-completion rows: the labels are the answer tokens + EOS only."""
    from datasets import load_dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    dataset = load_dataset(str(sample_dataset), "classification", split="train").select_columns(
        ["images", "prompt", "completion"])
    processor = AutoProcessor.from_pretrained(tiny_llava_path)
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_path)
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to=[], max_length=None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=processor)
    assert trainer.completion_only_loss is True
    rows = [dataset[i] for i in range(3)]
    answers = [row["completion"][0]["content"][0]["text"] for row in rows]
    batch = trainer.data_collator([dict(row) for row in rows])
    tokenizer = processor.tokenizer
    for i, answer in enumerate(answers):
        ids, labels, mask = batch["input_ids"][i], batch["labels"][i], batch["attention_mask"][i]
        trained = labels != -100
        assert torch.equal(labels[trained], ids[trained])
        assert tokenizer.decode(ids[trained]).strip() == answer + tokenizer.eos_token
        # Every prompt token (image placeholders, instruction, chat markup) is masked, and so is padding.
        first = int(trained.nonzero()[0])
        assert not trained[:first].any() and trained[first:].sum() == (mask[first:] == 1).sum()
        assert (ids[:first] == model.config.image_token_id).sum() == 16
        assert tokenizer.decode(ids[:first][mask[:first] == 1]).rstrip().endswith("ASSISTANT:")


def test_resume_evaluate_card_and_pipeline(train_script, tiny_llava_path, sample_dataset, tmp_path):
    from transformers import pipeline

    import synartifact_hf  # noqa: F401  (registers the task)

    out = tmp_path / "run"
    _train(train_script, tiny_llava_path, sample_dataset, out, "--evaluate_after_training", "false",
           "--save_steps", "1")
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()
    first = _state(out)

    # Resume from checkpoint-2 and train one more step, evaluating at the end.
    _train(train_script, tiny_llava_path, sample_dataset, out, "--max_steps", "3",
           "--save_steps", "1", "--resume_from_checkpoint", str(out / "checkpoint-2"), "--max_eval_samples", "3",
           "--eval_max_new_tokens", "6", "--paper_row", "stage1_llm_frozen")
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3]  # steps 1-2 come from the resumed checkpoint's history
    resumed = _state(out)
    assert any(not torch.equal(first[k], resumed[k]) for k in first if "multi_modal_projector" in k)

    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["num_examples"] == 3 and report["paper"]["f1"] == 52.02
    assert (out / "eval" / "per_class_scores.png").stat().st_size > 0

    card = (out / "README.md").read_text()
    from huggingface_hub import ModelCard

    metadata = ModelCard(card).data.to_dict()
    assert metadata["pipeline_tag"] == "image-text-to-text"
    metrics = metadata["model-index"][0]["results"][0]["metrics"]
    f1 = next(m["value"] for m in metrics if m["type"] == "f1")
    assert f1 == round(100 * report["metrics"]["f1"], 2)
    assert "| **All** |" in card and "pipeline(\"artifact-classification\"" in card
    assert "{{" not in card

    classifier = pipeline("artifact-classification", model=str(out))
    from PIL import Image

    result = classifier(Image.new("RGB", (40, 30), (10, 200, 10)), max_new_tokens=4)
    assert set(result) >= {"labels", "generated_text", "has_artifacts"}
    assert "custom_pipelines" not in json.loads((out / "config.json").read_text())


def test_share_pipeline_code(train_script, tiny_llava_path, sample_dataset, tmp_path):
    from synartifact_hf.pipeline import load_pipeline

    out = tmp_path / "shared"
    _train(train_script, tiny_llava_path, sample_dataset, out, "--evaluate_after_training", "false",
           "--save_strategy", "no", "--share_pipeline_code", "true", "--max_steps", "1")
    # Users without synartifact-hf: trust_remote_code runs these files (tests/test_pipeline.py loads such a
    # folder in a process that cannot import synartifact_hf); with it installed, load_pipeline uses ours.
    config = json.loads((out / "config.json").read_text())
    assert config["custom_pipelines"]["artifact-classification"]["impl"] == "pipeline.ArtifactClassificationPipeline"
    assert {"pipeline.py", "parsing.py", "instructions.py", "images.py", "taxonomy.py", "scoring.py"} <= {p.name for p in out.glob("*.py")}
    from PIL import Image

    result = load_pipeline(out)(Image.new("RGB", (40, 30), (10, 200, 10)), max_new_tokens=4)
    assert set(result) >= {"labels", "generated_text", "has_artifacts"}


def test_detection_config_trains(train_script, tiny_llava_path, sample_dataset, tmp_path):
    out = tmp_path / "det"
    _train(train_script, tiny_llava_path, sample_dataset, out, "--dataset_config", "detection",
           "--evaluate_after_training", "false", "--save_strategy", "no")
    assert "config `detection`" in (out / "README.md").read_text()


# The classifier's recipes; ddpo_*.yaml and flow_grpo_*.yaml belong to examples/train_ddpo.py and
# examples/train_flow_grpo.py and are tested with them.
@pytest.mark.parametrize(
    "recipe", sorted(p.name for p in (EXAMPLES / "recipes").glob("*.yaml")
                     if not p.name.startswith(("ddpo_", "flow_grpo_")))
)
def test_recipes_parse(train_script, recipe):
    path = EXAMPLES / "recipes" / recipe
    if recipe.startswith("baseline"):
        from trl import TrlParser

        evaluate_script = _load_script("evaluate_classifier")
        (args,) = TrlParser((evaluate_script.EvaluateArguments,)).parse_args_and_config(args=["--config", str(path)])
        assert args.model and args.paper_row == "baseline_llava15"
        return
    # bf16 cannot be validated on a CPU-only machine; everything else is checked as written.
    script_args, training_args, model_args = _parse(train_script, "--config", path, "--bf16", "false")
    assert training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps == 16
    assert training_args.max_length is None
    assert model_args.llm_mode in ("frozen", "full", "lora")
    assert script_args.dataset_config in ("classification", "detection")
    from synartifact_hf.evaluation import PAPER_TABLE2

    assert script_args.paper_row is None or script_args.paper_row in PAPER_TABLE2


def test_other_architecture_idefics3_lora(train_script, tiny_idefics3_path, sample_dataset, tmp_path):
    """The same script on an Idefics3/SmolVLM checkpoint: parts are found by structure (vision_model /
    connector / text_model)."""
    out = tmp_path / "idefics3"
    _train(train_script, tiny_idefics3_path, sample_dataset, out, "--llm_mode", "lora", "--lora_r", "4",
           "--evaluate_after_training", "false", "--save_strategy", "no")
    before, after = _state(tiny_idefics3_path), _state(out)
    assert not any(_changed(before, after, "model.vision_model.").values())
    assert all(_changed(before, after, "model.connector.").values())
    text = _changed(before, after, "model.text_model.")
    assert any(text.values()) and not any(v for k, v in text.items() if "embed_tokens" in k or "norm" in k)


def test_train_classifier_leaves_the_callers_push_to_hub_as_given(train_script, tmp_path):
    """train_classifier pushes once at the end itself, so its trainer must not push; the caller's
    arguments must not change for that, also when the run fails early (here: an incomplete Stage-1 set)."""
    from synartifact_hf.training.sft import train_classifier

    script_args, training_args, model_args = _parse(
        train_script, "--stage1_vision_tower", tmp_path / "tower", "--dataset_name", tmp_path / "data",
        "--output_dir", tmp_path / "out", "--use_cpu", "true", "--report_to", "none",
    )
    training_args.push_to_hub = True  # set after parsing: TrainingArguments would look up a Hub login
    with pytest.raises(ValueError, match="Stage-1 assembly needs all of"):
        train_classifier(script_args, training_args, model_args)
    assert training_args.push_to_hub is True
