"""The numbers of one evaluated generator (``DIR/report.json`` / ``report.md``): artifact rate, per-class
rates, parse rate and mean Eq. 4 reward, each with a 95% interval from a bootstrap over prompts
(:mod:`.statistics`).

Definitions (counted from the classifier's parsed labels):

- **parse rate**: images whose answer named at least one option (``has_artifacts`` is not null) / images;
- **artifact rate**: parsed images with at least one artifact label / parsed images (an unparsed answer
  says nothing about the image, so it is left out of the rates rather than counted as clean);
- **per-class rate**: parsed images with that class's label / parsed images (an image can have several);
- **mean reward**: Eq. 4 of the answer (BERTScore with all-MiniLM-L6-v2), averaged over all images (an
  unparsed answer still has a reward, an empty one the lower bound).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..taxonomy import ARTIFACT_CLASSES
from .statistics import DEFAULT_LEVEL, DEFAULT_RESAMPLES, cluster_bootstrap

__all__ = ["CLASS_NAMES", "PromptCounts", "count_by_prompt", "rate_report", "report_markdown"]

CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in ARTIFACT_CLASSES)


@dataclass
class PromptCounts:
    """Per-prompt sums (one row per prompt that has images)."""

    prompt_index: np.ndarray  # (C,)
    images: np.ndarray        # (C,)
    parsed: np.ndarray        # (C,)
    flagged: np.ndarray       # (C,) parsed images with >= 1 artifact label
    per_class: np.ndarray     # (C, 13)
    reward_sum: np.ndarray    # (C,)


def count_by_prompt(records: Iterable[dict]) -> PromptCounts:
    """Stream records (``prompt_index``, ``has_artifacts``, ``labels``, ``reward``) into per-prompt sums."""
    rows: dict[int, int] = {}
    sums: list[list[float]] = []
    column = {name: 4 + k for k, name in enumerate(CLASS_NAMES)}
    width = 4 + len(CLASS_NAMES)
    for record in records:
        p = int(record["prompt_index"])
        row = rows.get(p)
        if row is None:
            row = rows[p] = len(sums)
            sums.append([0.0] * width)
        s = sums[row]
        s[0] += 1
        s[3] += float(record["reward"])
        if record["has_artifacts"] is None:
            continue
        s[1] += 1
        s[2] += bool(record["has_artifacts"])
        for label in set(record["labels"]):
            if label in column:
                s[column[label]] += 1
    table = np.array(sums, dtype=np.float64).reshape(len(sums), width)
    return PromptCounts(np.array(list(rows), dtype=np.int64), table[:, 0], table[:, 1], table[:, 2],
                        table[:, 4:], table[:, 3])


def _entry(estimate, low, high, count=None, total=None) -> dict:
    def num(x):
        return None if not np.isfinite(x) else float(x)

    entry = {"estimate": num(estimate), "ci_low": num(low), "ci_high": num(high)}
    if count is not None:
        entry["count"] = int(count)
    if total is not None:
        entry["total"] = int(total)
    return entry


def rate_report(counts: PromptCounts, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                level: float = DEFAULT_LEVEL) -> dict:
    """``report.json``'s numbers from per-prompt sums; every interval from the same seeded replicates."""
    numerators = np.column_stack([counts.flagged, counts.parsed, counts.reward_sum, counts.per_class])
    denominators = np.column_stack([counts.parsed, counts.images, counts.images]
                                   + [counts.parsed] * len(CLASS_NAMES))
    boot = cluster_bootstrap(numerators, denominators, resamples=resamples, seed=seed, level=level)
    images, parsed = int(counts.images.sum()), int(counts.parsed.sum())
    per_class = {
        name: _entry(boot.estimate[3 + k], boot.low[3 + k], boot.high[3 + k], counts.per_class[:, k].sum(), parsed)
        for k, name in enumerate(CLASS_NAMES)
    }
    return {
        "images": images,
        "prompts": len(counts.prompt_index),
        "parsed": parsed,
        "bootstrap": {"unit": "prompt", "resamples": resamples, "seed": seed, "level": level,
                      "interval": "percentile"},
        "artifact_rate": _entry(boot.estimate[0], boot.low[0], boot.high[0], counts.flagged.sum(), parsed),
        "parse_rate": _entry(boot.estimate[1], boot.low[1], boot.high[1], parsed, images),
        "mean_reward": _entry(boot.estimate[2], boot.low[2], boot.high[2], None, images),
        "per_class": per_class,
    }


def _pct(entry: dict) -> str:
    if entry["estimate"] is None:
        return "n/a"
    ci = "" if entry["ci_low"] is None else f" [{100 * entry['ci_low']:.1f}, {100 * entry['ci_high']:.1f}]"
    return f"{100 * entry['estimate']:.1f}%{ci}"


def report_markdown(report: dict, settings: dict, *, figures: dict[str, str], toy_note: str | None = None) -> str:
    level = round(100 * report["bootstrap"]["level"])
    reward = report["mean_reward"]
    reward_text = "n/a" if reward["estimate"] is None else (
        f"{reward['estimate']:.4f} [{reward['ci_low']:.4f}, {reward['ci_high']:.4f}]")
    lines = [
        "# Generator evaluation",
        "",
        *([toy_note, ""] if toy_note else []),
        f"Pipeline `{settings['pipeline']}`" + (f" + LoRA `{settings['lora']}`" if settings.get("lora") else "")
        + f", {settings['steps']} steps, guidance {settings['guidance']}, base seed {settings['seed']}; "
        f"{report['prompts']} prompts ({settings['prompts_source']}) x {settings['images_per_prompt']} image(s) = "
        f"{report['images']} images; classifier `{settings['classifier']}`.",
        "",
        f"Intervals: {level}% percentile bootstrap over prompts ({report['bootstrap']['resamples']} resamples, seed "
        f"{report['bootstrap']['seed']}); the images of one prompt are resampled together.",
        "",
        "| statistic | value [" + f"{level}% CI] | count |",
        "|---|---|---|",
        f"| artifact rate (>= 1 artifact label, of parsed images) | {_pct(report['artifact_rate'])} | "
        f"{report['artifact_rate']['count']} / {report['artifact_rate']['total']} |",
        f"| parse rate (answer names an option) | {_pct(report['parse_rate'])} | "
        f"{report['parse_rate']['count']} / {report['parse_rate']['total']} |",
        f"| mean Eq. 4 reward | {reward_text} | {reward['total']} images |",
        "",
        "## Per class (share of parsed images with the label)",
        "",
        "| class | rate [" + f"{level}% CI] | images |",
        "|---|---|---|",
    ]
    for name, entry in report["per_class"].items():
        lines.append(f"| {name} | {_pct(entry)} | {entry['count']} |")
    lines.append("")
    for name, caption in figures.items():
        lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    return "\n".join(lines)
