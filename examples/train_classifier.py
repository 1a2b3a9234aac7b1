# Copyright 2026 The synartifact-hf contributors. Licensed under the Apache License, Version 2.0.
"""Fine-tune a vision-language model into a SynArtifact artifact classifier with TRL's SFTTrainer.

The paper's recipe (Sec. 3.3, 4.1, Table 2): LLaVA-1.5-7B, the vision encoder frozen, the
vision-language projector trained, the LLM frozen or updated, batch size 16, cross-entropy on the answer
tokens only. The dataset's ``classification`` config is TRL conversational *prompt-completion* data
(image + instruction -> reference answer), for which SFTTrainer masks the prompt (``completion_only_loss``).
``--dataset_config detection`` trains the detection variant (Appendix A.3) with the same script.

# Table 2's best row: Stage-1 LLaVA-1.5-7B (assembled from CLIP + Vicuna + the released projector), LLM frozen
python examples/train_classifier.py --config examples/recipes/stage1_llm_frozen.yaml

# LLM updated (one GPU with 80 GB, or several: see below)
python examples/train_classifier.py --config examples/recipes/stage1_llm_updated.yaml

# Stage-2 init (llava-hf/llava-1.5-7b-hf), LLM frozen
python examples/train_classifier.py --config examples/recipes/stage2_llm_frozen.yaml

# LoRA on the LLM (not in the paper), projector trained in full
python examples/train_classifier.py --config examples/recipes/stage1_lora.yaml

# Detection (boxes in the 336x336 padded square), learning rate 2e-5
python examples/train_classifier.py --config examples/recipes/detection_stage1.yaml

# Several GPUs: DeepSpeed ZeRO-2 / ZeRO-3 or FSDP (keep per-device batch x GPUs x accumulation = 16)
accelerate launch --config_file examples/accelerate/zero2.yaml examples/train_classifier.py \
    --config examples/recipes/stage1_llm_updated.yaml --per_device_train_batch_size 2 --gradient_accumulation_steps 1
accelerate launch --config_file examples/accelerate/zero3.yaml examples/train_classifier.py \
    --config examples/recipes/stage1_llm_updated.yaml --per_device_train_batch_size 2 --gradient_accumulation_steps 1
accelerate launch --config_file examples/accelerate/fsdp.yaml examples/train_classifier.py \
    --config examples/recipes/stage1_llm_updated.yaml --per_device_train_batch_size 2 --gradient_accumulation_steps 1

# Two processes without GPUs (DDP over gloo; what tests/test_train_multiprocess.py runs)
accelerate launch --multi_gpu --num_processes 2 examples/train_classifier.py --config ... --use_cpu true

# Any AutoModelForImageTextToText checkpoint (Qwen2-VL, SmolVLM/Idefics3, LLaVA-NeXT, PaliGemma, ...)
python examples/train_classifier.py --model_name_or_path HuggingFaceTB/SmolVLM-Instruct --llm_mode lora \
    --dataset_name synartifact-1k --output_dir smolvlm-synartifact

# Publish: add --push_to_hub --hub_model_id <user>/<name> (pushed once, at the end, with the model card)

Any recipe value can be overridden on the command line (``--learning_rate 1e-5``). ``--dataset_name`` is a
folder written by ``synartifact-hf build-dataset`` (name it ``synartifact-1k``) or a Hub dataset repo.
The output folder holds the model and processor (LoRA adapters merged in; the adapter alone under
``lora_adapter/``), ``README.md`` (the model card, with the test-split results when
``--evaluate_after_training`` is on), ``eval/`` (report, figures) and the checkpoints.

The options and the training code live in ``synartifact_hf.training.sft`` (``train_classifier``), which
``synartifact-hf demo`` calls too.
"""

from __future__ import annotations

from trl import SFTConfig, TrlParser

from synartifact_hf.training.sft import ClassifierModelArguments, ClassifierScriptArguments, train_classifier


def main(script_args, training_args, model_args):
    return train_classifier(script_args, training_args, model_args)


def make_parser(subparsers=None):
    dataclass_types = (ClassifierScriptArguments, SFTConfig, ClassifierModelArguments)
    if subparsers is not None:
        return subparsers.add_parser("sft", help="Fine-tune an artifact classifier", dataclass_types=dataclass_types)
    return TrlParser(dataclass_types)


if __name__ == "__main__":
    parser = make_parser()
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
