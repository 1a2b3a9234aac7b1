"""Fine-tuning a vision-language model into an artifact classifier with TRL's ``SFTTrainer``.

The code behind ``examples/train_classifier.py`` (which only parses ``--config``/command-line options into
the three dataclasses and calls :func:`train_classifier`), shared with ``synartifact-hf demo`` so the demo
fine-tunes through the same path. ``ClassifierScriptArguments`` (dataset, evaluation, sharing) and
``ClassifierModelArguments`` (start checkpoint or Stage-1 assembly, ``llm_mode``, LoRA) go with TRL's
``SFTConfig``; :func:`train_classifier` loads, freezes, trains, saves (LoRA merged), optionally evaluates
on the test split, writes the model card and pushes.

Importing this module imports TRL (its argument dataclasses derive from ``trl.ScriptArguments``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

from trl import ScriptArguments

__all__ = [
    "ClassifierModelArguments",
    "ClassifierScriptArguments",
    "SFTRun",
    "card_values",
    "load_model_and_processor",
    "load_training_data",
    "train_classifier",
]


@dataclass
class ClassifierScriptArguments(ScriptArguments):
    """Dataset and evaluation options (dataset_name, dataset_config, dataset_train_split,
    dataset_test_split come from TRL's ScriptArguments)."""

    dataset_name: str | None = field(
        default="synartifact-1k",
        metadata={"help": "Built dataset folder (`synartifact-hf build-dataset`) or Hub dataset repo id."},
    )
    dataset_config: str | None = field(
        default="classification",
        metadata={"help": "`classification` (Table 2) or `detection` (Appendix A.3)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on the first N training rows only (smoke runs)."}
    )
    share_pipeline_code: bool = field(
        default=False,
        metadata={"help": "Also save the pipeline code (config.json `custom_pipelines` + pipeline.py), so users "
                  "without synartifact-hf load the model with pipeline(model=..., trust_remote_code=True). "
                  "transformers then requires trust_remote_code or pipeline_class= for plain "
                  "pipeline('artifact-classification', model=...); synartifact_hf.pipeline.load_pipeline and the "
                  "CLI pass the installed class."},
    )
    evaluate_after_training: bool = field(
        default=True,
        metadata={"help": "Run the saved model through pipeline('artifact-classification') on the test split "
                  "and put artifact_f1 (and artifact_iou for detection) in the model card."},
    )
    eval_batch_size: int = field(default=8, metadata={"help": "Pipeline batch size for the final evaluation."})
    eval_max_new_tokens: int = field(
        default=128, metadata={"help": "Generation budget per answer in the final evaluation."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on the first N test rows only (smoke runs)."}
    )
    paper_row: str | None = field(
        default=None,
        metadata={"help": "Key of the Table 2 row this run reproduces (see synartifact_hf.evaluation.PAPER_TABLE2); "
                  "its numbers go beside ours in the report and card."},
    )


@dataclass
class ClassifierModelArguments:
    """Which model to start from and which parts train."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "An AutoModelForImageTextToText checkpoint (Hub id or folder). Leave unset when the "
                  "stage1_* arguments assemble a Stage-1 LLaVA instead."},
    )
    model_revision: str = field(default="main", metadata={"help": "Revision of model_name_or_path."})
    dtype: str = field(
        default="auto", metadata={"help": "Load dtype: auto, bfloat16, float16 or float32."}
    )
    llm_mode: str = field(
        default="frozen",
        metadata={"help": "frozen (only the projector trains), full (projector + LLM), or lora (projector + "
                  "LoRA adapters on the LLM). The vision tower is always frozen."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (llm_mode=lora)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (llm_mode=lora)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (llm_mode=lora)."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Linear layer names of the LLM to adapt (e.g. q_proj v_proj); default: all of them."},
    )
    stage1_vision_tower: str | None = field(
        default=None, metadata={"help": "Stage-1 assembly: CLIP checkpoint, e.g. openai/clip-vit-large-patch14-336."}
    )
    stage1_language_model: str | None = field(
        default=None, metadata={"help": "Stage-1 assembly: language model, e.g. lmsys/vicuna-7b-v1.5."}
    )
    stage1_projector: str | None = field(
        default=None,
        metadata={"help": "Stage-1 assembly: the original mm_projector.bin (local file, or <repo_id>/<file> on the "
                  "Hub, e.g. liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5/mm_projector.bin)."},
    )
    pad_to_square: bool | None = field(
        default=None,
        metadata={"help": "Pad images to a square before resizing, as the original LLaVA-1.5 (expand2square). "
                  "The Stage-1 assembly always does; set it for llava-hf checkpoints, whose processor crops."},
    )


def load_model_and_processor(model_args: ClassifierModelArguments):
    """The model to fine-tune and its processor: a Hub/local checkpoint or an assembled Stage-1 LLaVA."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dtype = model_args.dtype if model_args.dtype == "auto" else getattr(torch, model_args.dtype)
    stage1 = (model_args.stage1_vision_tower, model_args.stage1_language_model, model_args.stage1_projector)
    if any(stage1):
        if not all(stage1) or model_args.model_name_or_path:
            raise ValueError("Stage-1 assembly needs all of stage1_vision_tower, stage1_language_model and "
                             "stage1_projector, and no model_name_or_path")
        from .assembly import assemble_llava

        projector = model_args.stage1_projector
        if not os.path.isfile(projector):
            from huggingface_hub import hf_hub_download

            repo_id, _, filename = projector.rpartition("/")
            if repo_id.count("/") != 1:
                raise ValueError(f"stage1_projector {projector!r} is neither a file nor <owner>/<repo>/<file>")
            projector = hf_hub_download(repo_id, filename)
        return assemble_llava(model_args.stage1_vision_tower, model_args.stage1_language_model, projector,
                              dtype=None if dtype == "auto" else dtype)
    if not model_args.model_name_or_path:
        raise ValueError("Pass --model_name_or_path, or the three --stage1_* arguments")
    model = AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, dtype=dtype, use_safetensors=True
    )
    processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    if model_args.pad_to_square:
        if not hasattr(processor.image_processor, "do_pad"):
            raise ValueError(f"{type(processor.image_processor).__name__} cannot pad images to a square")
        processor.image_processor.do_pad = True
    return model, processor


def load_training_data(script_args: ClassifierScriptArguments):
    """The train split as TRL prompt-completion rows (images, prompt, completion) only."""
    from datasets import load_dataset

    dataset = load_dataset(script_args.dataset_name, script_args.dataset_config)
    train = dataset[script_args.dataset_train_split]
    missing = {"images", "prompt", "completion"} - set(train.column_names)
    if missing:
        raise ValueError(
            f"{script_args.dataset_name}[{script_args.dataset_config}] lacks columns {sorted(missing)}; use the "
            "'classification' or 'detection' config of a folder built by `synartifact-hf build-dataset`"
        )
    if script_args.max_train_samples is not None:
        train = train.select(range(min(script_args.max_train_samples, len(train))))
    # Extra columns (labels, image_id) would reach the collator; the trainer only needs these three.
    return train.select_columns(["images", "prompt", "completion"])


def card_values(script_args, training_args, model_args, summary, report, num_train_examples) -> dict:
    """What the model card says about this run."""
    stage1 = model_args.stage1_language_model is not None
    recipe = {
        "init": "Stage 1 (assembled: " + ", ".join(
            [model_args.stage1_vision_tower, model_args.stage1_language_model, model_args.stage1_projector]) + ")"
        if stage1 else model_args.model_name_or_path,
        "llm_mode": model_args.llm_mode,
        "effective batch size": training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
        * training_args.world_size,
        "learning_rate": training_args.learning_rate,
        "epochs": training_args.num_train_epochs if training_args.max_steps <= 0 else f"max_steps={training_args.max_steps}",
        "lr_scheduler_type": str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)),
        "warmup_steps": training_args.warmup_steps,
        "precision": "bf16" if training_args.bf16 else ("fp16" if training_args.fp16 else "fp32"),
        "seed": training_args.seed,
    }
    if model_args.llm_mode == "lora":
        recipe.update(lora_r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout)
    if script_args.paper_row:
        recipe["paper row (Table 2)"] = script_args.paper_row
    output_name = os.path.basename(os.path.abspath(training_args.output_dir))
    return dict(
        model_name=output_name,
        base_model=model_args.stage1_language_model if stage1 else model_args.model_name_or_path,
        repo_id=training_args.hub_model_id or output_name,
        dataset_name=script_args.dataset_name,
        dataset_config=script_args.dataset_config,
        llm_mode=model_args.llm_mode,
        summary=summary,
        recipe=recipe,
        report=report,
        num_train_examples=num_train_examples,
    )


@dataclass
class SFTRun:
    """What :func:`train_classifier` did: where the model is, the trainer's log (loss per logged step,
    runtime) and the test-split report (``None`` when not evaluated)."""

    output_dir: str
    log_history: list[dict] = field(default_factory=list)
    report: object | None = None


def train_classifier(script_args, training_args, model_args) -> SFTRun | None:
    """Fine-tune, save (LoRA merged), evaluate (``evaluate_after_training``), write the model card and
    push (``push_to_hub``). Returns an :class:`SFTRun` on the main process, ``None`` on the others."""
    from trl import SFTTrainer

    from ..pipeline import add_pipeline_code
    from .checkpoint import merge_lora_checkpoint
    from .freezing import lora_config_for, prepare_model_for_training
    from .launch import check_launch
    from .model_card import write_model_card

    # Push once, at the end, with our model card (the Trainer would push every save with its own card).
    # The trainer gets a copy saying so; the caller's arguments are left as they were given.
    push_to_hub = training_args.push_to_hub
    training_args = copy.copy(training_args)
    training_args.push_to_hub = False

    model, processor = load_model_and_processor(model_args)
    lora_config = None
    if model_args.llm_mode == "lora":
        lora_config = lora_config_for(model, r=model_args.lora_r, alpha=model_args.lora_alpha,
                                      dropout=model_args.lora_dropout, target_modules=model_args.lora_target_modules)
    model, summary = prepare_model_for_training(model, model_args.llm_mode, lora_config=lora_config)
    print(summary.describe())

    train_dataset = load_training_data(script_args)
    trainer = SFTTrainer(model=model, args=training_args, train_dataset=train_dataset, processing_class=processor)
    check_launch(trainer.accelerator.state)  # the state that knows FSDP / DeepSpeed; fail before training
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)  # every process: gathers ZeRO-3 / FSDP shards
    if trainer.is_world_process_zero():
        processor.save_pretrained(training_args.output_dir)
        if model_args.llm_mode == "lora":  # merged weights for the pipeline, the adapter kept in lora_adapter/
            merge_lora_checkpoint(load_model_and_processor(model_args)[0], training_args.output_dir)
        if script_args.share_pipeline_code:
            add_pipeline_code(training_args.output_dir)
    trainer.accelerator.wait_for_everyone()  # the checkpoint folder is complete before anyone evaluates it

    report = None
    if script_args.evaluate_after_training:
        from ..evaluation import evaluate_checkpoint

        # Every process classifies its share of the split (synartifact_hf.scaleout); the main one writes.
        report = evaluate_checkpoint(
            training_args.output_dir, script_args.dataset_name, config=script_args.dataset_config,
            split=script_args.dataset_test_split, output_dir=os.path.join(training_args.output_dir, "eval"),
            batch_size=script_args.eval_batch_size, max_new_tokens=script_args.eval_max_new_tokens,
            max_samples=script_args.max_eval_samples, paper_row=script_args.paper_row,
        )
    if not trainer.is_world_process_zero():
        return None
    if report is not None:
        print(report.to_markdown())
    write_model_card(training_args.output_dir, **card_values(script_args, training_args, model_args, summary, report,
                                                             len(train_dataset)))
    if push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi(token=training_args.hub_token)
        repo_id = training_args.hub_model_id or os.path.basename(os.path.abspath(training_args.output_dir))
        api.create_repo(repo_id, private=bool(training_args.hub_private_repo), exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=training_args.output_dir,
                          ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**"])
    return SFTRun(output_dir=training_args.output_dir, log_history=list(trainer.state.log_history), report=report)
