"""Steps 4-5 of the demo: the before/after table (Table-2 columns, parse rate and the Eq. 4 reward).

One :class:`ModelRow` per classifier, built from its :class:`~synartifact_hf.evaluation.EvaluationReport`
on the test split and the Eq. 4 rewards of its answers; :func:`comparison_markdown` puts the rows side by
side, with one line per test image (reference labels, each model's answer and reward) under the table.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..atomic import write_text_atomic

__all__ = ["ModelRow", "comparison_markdown", "model_row", "write_comparison"]

TOY_NOTE = (
    "**A toy, not the paper's result.** The classifier is a tiny LLaVA built with random weights, the images are "
    "placeholders (a flat colour and the word PLACEHOLDER, not the release's images) and the training split "
    "holds {num_train} of them, so the model can only learn the answer *format* and the label frequencies. The "
    "numbers show the mechanics: after fine-tuning the answers become parseable option lists and the metrics "
    "and rewards move. The paper's Table 2 (LLaVA-1.5-7B on the real images) is in each evaluation's report.md."
)


@dataclass
class ModelRow:
    """A classifier's scores on the test split; fractions 0-1 except the rewards."""

    name: str
    model: str
    num_examples: int
    parse_rate: float  # answers naming at least one of the 14 options
    accuracy: float
    precision: float
    recall: float
    f1: float
    reward_mean: float
    answers: list[str] = field(default_factory=list)
    labels: list[list[str]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)


def model_row(name: str, report, reward) -> ModelRow:
    """Score ``report``'s answers with ``reward`` (an :class:`~synartifact_hf.reward.ArtifactReward`)."""
    answers = [p["generated_text"] for p in report.predictions]
    if not answers:
        raise ValueError(f"{name}: the evaluation report of {report.model} holds no predictions")
    values, _ = reward.rewards_from_answers(answers)
    rewards = [float(v) for v in values.tolist()]
    labels = [list(p["labels"]) for p in report.predictions]
    summary = report.summary()
    return ModelRow(
        name=name, model=report.model, num_examples=len(answers),
        parse_rate=sum(bool(lab) for lab in labels) / len(labels),
        accuracy=summary["accuracy"], precision=summary["precision"], recall=summary["recall"], f1=summary["f1"],
        reward_mean=sum(rewards) / len(rewards), answers=answers, labels=labels, rewards=rewards,
    )


def _cell(text: str, limit: int = 90) -> str:
    text = text.replace("|", "\\|").replace("\n", " ⏎ ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def comparison_markdown(rows: list[ModelRow], *, image_ids, references, reference_rewards=None,
                        note: str | None = None) -> str:
    """The table (parse rate, accuracy, P, R, F1 in %, mean reward) and the per-image answers."""
    lines = ["# Artifact classifier before / after fine-tuning", ""]
    if note:
        lines += [note, ""]
    lines += [
        f"Test split, {rows[0].num_examples} images. Parsed = answers naming at least one of the 14 options; "
        "Acc. (mean Jaccard), Prec., Rec., F1 are `artifact_f1`'s example-based scores (the All row of the "
        "paper's Table 2), in %; r = the Eq. 4 artifact reward of the answers (BERTScore, all-MiniLM-L6-v2), "
        "mean over the images (higher = fewer artifacts named).",
        "",
        "| Classifier | Parsed | Acc. | Prec. | Rec. | F1 | mean r (Eq. 4) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {100 * row.parse_rate:.1f} | {100 * row.accuracy:.2f} | {100 * row.precision:.2f} | "
            f"{100 * row.recall:.2f} | {100 * row.f1:.2f} | {row.reward_mean:.4f} |"
        )
    if reference_rewards is not None:
        mean = sum(reference_rewards) / len(reference_rewards)
        lines += ["", f"For scale: the reference answers themselves get mean r = {mean:.4f}."]
    lines += ["", "## Answers per image", "",
              "| Image | Reference | " + " | ".join(f"{row.name}: answer (r)" for row in rows) + " |",
              "|---|---|" + "---|" * len(rows)]
    for i, (image_id, reference) in enumerate(zip(image_ids, references)):
        cells = [f"{_cell(row.answers[i])} ({row.rewards[i]:.3f})" for row in rows]
        lines.append(f"| {image_id} | {', '.join(reference)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(rows: list[ModelRow], output_dir, *, image_ids, references, reference_rewards=None,
                     note: str | None = None) -> dict[str, Path]:
    """``comparison.md`` (the table) and ``comparison.json`` (the same numbers) in ``output_dir``."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = comparison_markdown(rows, image_ids=image_ids, references=references,
                                   reference_rewards=reference_rewards, note=note)
    write_text_atomic(out / "comparison.md", markdown)
    payload = {"rows": [asdict(row) for row in rows], "image_ids": list(image_ids),
               "references": [list(r) for r in references], "reference_rewards": reference_rewards}
    write_text_atomic(out / "comparison.json", json.dumps(payload, indent=1))
    return {"markdown": out / "comparison.md", "json": out / "comparison.json"}
