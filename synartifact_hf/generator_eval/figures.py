"""Pictures of a generator evaluation: per-class rates with confidence whiskers, paired differences
(forest plot), and a contact sheet of flagged images with their labels. Written into a staging folder
that is swapped into place whole, so plain ``savefig`` is enough."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["contact_sheet", "plot_differences", "plot_rates"]

SHEET_CELL = 256


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _rows(report: dict) -> list[tuple[str, dict]]:
    return [("Any artifact (>= 1 label)", report["artifact_rate"]), *report["per_class"].items()]


def _whiskers(entries: Sequence[dict]) -> tuple[list[float], list[list[float]]]:
    values, err = [], [[], []]
    for e in entries:
        v = 100 * (e["estimate"] or 0.0)
        values.append(v)
        lo = v if e["ci_low"] is None else 100 * e["ci_low"]
        hi = v if e["ci_high"] is None else 100 * e["ci_high"]
        err[0].append(max(0.0, v - lo))
        err[1].append(max(0.0, hi - v))
    return values, err


def plot_rates(report: dict, path: str | Path, *, title: str) -> Path:
    """Horizontal bars: the overall and per-class artifact rates (%) with their bootstrap intervals."""
    plt = _pyplot()
    rows = _rows(report)
    values, err = _whiskers([e for _, e in rows])
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(rows) + 1.5), dpi=100)
    colors = ["#444444"] + ["#1f77b4"] * (len(rows) - 1)
    ax.barh(range(len(rows)), values, xerr=err, color=colors, capsize=3, error_kw={"elinewidth": 1})
    ax.set_yticks(range(len(rows)), labels=[f"{name} (n={e['count']})" for name, e in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    level = round(100 * report["bootstrap"]["level"])
    ax.set_xlabel(f"% of parsed images (whiskers: {level}% bootstrap CI over prompts)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_differences(comparison: dict, path: str | Path, *, names: tuple[str, str]) -> Path:
    """Left: both models' rates on the shared pairs; right: B - A with paired-bootstrap intervals; a star
    marks Holm-adjusted McNemar p < 0.05."""
    plt = _pyplot()
    rows = [("Any artifact (>= 1 label)", comparison["artifact_rate"]), *comparison["per_class"].items()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.42 * len(rows) + 1.6), dpi=100, sharey=True,
                                      gridspec_kw={"width_ratios": [1.2, 1]})
    ys = list(range(len(rows)))
    for offset, key, label in ((-0.2, "a", names[0]), (0.2, "b", names[1])):
        values, err = _whiskers([e[key] for _, e in rows])
        left.barh([y + offset for y in ys], values, height=0.4, xerr=err, capsize=2, label=label,
                  error_kw={"elinewidth": 1})
    left.set_yticks(ys, labels=[name for name, _ in rows], fontsize=8)
    left.invert_yaxis()
    left.set_xlim(0, 100)
    left.set_xlabel("% of pairs (both answers parsed)")
    left.legend(fontsize=8, loc="lower right")
    left.grid(axis="x", alpha=0.3)
    diffs, err = _whiskers([e["difference"] for _, e in rows])
    right.errorbar(diffs, ys, xerr=err, fmt="o", color="black", ecolor="#555555", capsize=3, ms=4)
    right.axvline(0, color="#999999", lw=1)
    for y, (_, e) in zip(ys, rows):
        if e["p_holm"] is not None and e["p_holm"] < 0.05:
            right.annotate("*", (diffs[y], y), xytext=(6, -4), textcoords="offset points", fontsize=12, color="#d62728")
    level = round(100 * comparison["bootstrap"]["level"])
    right.set_xlabel(f"B - A, points ({level}% paired CI; * Holm p < 0.05)")
    right.grid(axis="x", alpha=0.3)
    fig.suptitle(f"A = {names[0]}   vs   B = {names[1]}   ({comparison['pairs']} pairs, "
                 f"{comparison['prompts']} prompts)", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def contact_sheet(records: Sequence[dict], image_of: Callable[[str], object], path: str | Path, *,
                  columns: int = 6) -> Path:
    """Tile the images of ``records`` (item_id, prompt, labels), each captioned with its id, prompt and
    labels (:func:`synartifact_hf.viz.draw_artifacts`); small images are enlarged without smoothing."""
    from PIL import Image

    from ..viz import draw_artifacts, save_box_comparison_grid

    panels = []
    for record in records:
        image = image_of(record["item_id"]).convert("RGB")
        if image.width < SHEET_CELL:
            scale = SHEET_CELL / image.width
            image = image.resize((SHEET_CELL, max(1, round(image.height * scale))), Image.NEAREST)
        prompt = record["prompt"] if len(record["prompt"]) <= 60 else record["prompt"][:57] + "..."
        panels.append(draw_artifacts(image, [], labels=record["labels"], title=f"{record['item_id']}: {prompt}",
                                     other_caption=record.get("other_artifacts")))
    return save_box_comparison_grid(panels, path, columns=columns, cell=SHEET_CELL)
