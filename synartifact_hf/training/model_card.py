"""Write a fine-tuned classifier's model card from ``hub_cards/``.

The card (``hub_cards/model_card.md``) is filled with values of the run: base model, data, trainable
parts with parameter counts, the recipe's hyper-parameters, and, when the run was evaluated, the
Table-2-style results both as a table and as ``model-index`` metadata (so the Hub shows them).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import write_text_atomic

__all__ = ["MODEL_CARD_TEMPLATE", "render_model_card", "write_model_card"]

MODEL_CARD_TEMPLATE = "model_card.md"

_MODE_TEXT = {
    "frozen": "the vision-language projector (vision tower and language model frozen)",
    "full": "the vision-language projector and the whole language model (vision tower frozen)",
    "lora": "the vision-language projector in full, the language model through LoRA adapters (merged into "
            "the saved weights); vision tower frozen",
}
_TASK_TEXT = {
    "classification": "the paper's artifact classification instruction, Table 2",
    "detection": "the detection instruction of the paper's Appendix A.3: judgement, classes, boxes in the "
                 "336x336 padded square, other-artifact caption",
}


def _metadata_yaml(*, model_name, base_model, dataset_name, dataset_config, report, tags) -> str:
    from huggingface_hub import EvalResult, ModelCardData

    # Local paths mean nothing on the Hub (and fail its base_model check): metadata names Hub ids only.
    hub_base = None if os.path.exists(base_model) else base_model
    hub_dataset = None if os.path.exists(dataset_name) else dataset_name
    dataset_type = hub_dataset or os.path.basename(os.path.normpath(dataset_name))
    eval_results = None
    if report is not None:
        task_name = "Artifact detection" if dataset_config == "detection" else "Artifact classification"
        common = dict(task_type="image-text-to-text", task_name=task_name, dataset_type=dataset_type,
                      dataset_name="SynArtifact-1K", dataset_config=dataset_config, dataset_split=report.split)
        names = {"accuracy": "Accuracy (example-based Jaccard)", "precision": "Precision (example-based)",
                 "recall": "Recall (example-based)", "f1": "F1 (example-based)"}
        eval_results = [
            EvalResult(metric_type=key, metric_name=names[key], metric_value=round(100 * value, 2), **common)
            for key, value in report.summary().items()
        ]
        if report.detection is not None:
            eval_results.append(EvalResult(metric_type="mean_iou", metric_name="Mean IoU (matched same-class boxes)",
                                           metric_value=round(float(report.detection["mean_iou"]), 4), **common))
            eval_results.append(EvalResult(metric_type="recall", metric_name="Box recall at IoU 0.5",
                                           metric_value=round(100 * float(report.detection["recall"]), 2), **common))
    data = ModelCardData(
        base_model=hub_base,
        datasets=[hub_dataset] if hub_dataset else None,
        library_name="transformers",
        pipeline_tag="image-text-to-text",
        license="other",
        license_name="same-as-base-model",
        tags=tags,
        model_name=model_name,
        eval_results=eval_results,
    )
    return data.to_yaml()


def _parameter_table(summary) -> str:
    rows = ["| Part | Trainable | Total |", "|---|---:|---:|"]
    for part, counts in summary.to_dict().items():
        if counts["total"]:
            rows.append(f"| {part.replace('_', ' ')} | {counts['trainable']:,} | {counts['total']:,} |")
    return "\n".join(rows)


def _evaluation_section(report) -> str:
    if report is None:
        return ("Not evaluated in this run. Evaluate with `python examples/evaluate_classifier.py --model <this repo> "
                "--dataset synartifact-1k`.")
    text = report.to_markdown()
    # The report's own title and figure links point at local files; keep the tables.
    body = [line for line in text.splitlines()[1:] if not line.startswith("![") and line != "## Figures"]
    return "\n".join(line.replace("## ", "### ", 1) if line.startswith("## ") else line for line in body).strip()


def render_model_card(
    *,
    model_name: str,
    base_model: str,
    repo_id: str,
    dataset_name: str,
    dataset_config: str = "classification",
    llm_mode: str,
    summary,
    recipe: dict,
    report=None,
    num_train_examples: int | None = None,
) -> str:
    """The model card text, rendered from ``hub_cards/model_card.md`` with this run's values.

    Args:
        summary: the :class:`~synartifact_hf.training.TrainableSummary` of the trained model.
        recipe: hyper-parameters to list (``{"learning_rate": 2e-5, ...}``).
        report: the :class:`~synartifact_hf.evaluation.EvaluationReport` of the final evaluation, or None.
    """
    from ..cards import render_card
    from ..paper import CITATION

    if llm_mode not in _MODE_TEXT:
        raise ValueError(f"llm_mode must be one of {sorted(_MODE_TEXT)}, got {llm_mode!r}")
    if dataset_config not in _TASK_TEXT:
        raise ValueError(f"dataset_config must be one of {sorted(_TASK_TEXT)}, got {dataset_config!r}")
    is_local = os.path.exists(base_model)
    tags = ["synartifact", "artifact-classification", "image-text-to-text", "trl", "sft"]
    if llm_mode == "lora":
        tags.append("lora")
    data = f"`{dataset_name}`, config `{dataset_config}`, split `train`"
    if num_train_examples is not None:
        data += f" ({num_train_examples} images)"
    recipe_rows = "\n".join(f"| {key.replace('_', ' ')} | `{value}` |" for key, value in recipe.items())
    return render_card(
        MODEL_CARD_TEMPLATE,
        metadata_yaml=_metadata_yaml(model_name=model_name, base_model=base_model, dataset_name=dataset_name,
                                     dataset_config=dataset_config, report=report, tags=tags).strip(),
        model_name=model_name,
        base_model=base_model,
        base_model_url=base_model if is_local else f"https://huggingface.co/{base_model}",
        task_description=_TASK_TEXT[dataset_config],
        repo_id=repo_id,
        data_description=data,
        trainable_parts=_MODE_TEXT[llm_mode],
        recipe_rows=recipe_rows,
        parameter_table=_parameter_table(summary),
        evaluation_section=_evaluation_section(report),
        citation=CITATION.strip(),
    )


def write_model_card(output_dir, **values) -> Path:
    """Render the card (see :func:`render_model_card`) into ``output_dir/README.md`` (atomic write)."""
    text = render_model_card(**values)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out / "README.md", text)
