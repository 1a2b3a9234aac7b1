"""``compare-generators``: two ``eval-generator`` folders of the same prompts and seeds, compared pair by pair.

A pair is one (prompt, seed) under model A and model B: the same noise, the same prompt, so the difference
is the model. For every statistic (any artifact, each class) the comparison uses the pairs where both
answers parsed:

- rates of A and of B on those pairs, and the difference B - A, each with a 95% percentile interval from a
  paired bootstrap over prompts (a prompt's pairs are drawn together; one set of replicates for all);
- McNemar's exact test on the discordant pairs (flagged under one model only), per class and overall,
  with Holm's step-down correction over those 14 tests;
- the mean Eq. 4 reward of A and B and its difference (over all pairs).

The folders must share the same (item_id, prompt, seed) set and the same classifier and instruction;
otherwise the comparison is refused with what differs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .report import CLASS_NAMES
from .statistics import DEFAULT_LEVEL, DEFAULT_RESAMPLES, cluster_bootstrap, holm, mcnemar_exact

__all__ = ["NotComparableError", "compare_folders", "compare_records", "comparison_markdown", "check_comparable"]


class NotComparableError(ValueError):
    """The two folders cannot be paired (other prompts/seeds, classifier or instruction)."""


def check_comparable(settings_a: dict, settings_b: dict, keys_a: list[tuple], keys_b: list[tuple],
                     names: tuple[str, str] = ("A", "B")) -> None:
    """Refuse unless both folders hold the same (item_id, prompt, seed) set and the same classifier and
    instruction."""
    for key, what in (("classifier", "classifier"), ("instruction_sha256", "instruction (sha256)")):
        if settings_a.get(key) != settings_b.get(key):
            raise NotComparableError(
                f"{names[0]} and {names[1]} were classified with different {what}: {settings_a.get(key)!r} vs "
                f"{settings_b.get(key)!r}; rerun eval-generator on one of them with the other's classifier and "
                "instruction, so the rates measure the generators and not the classifiers")
    a, b = set(keys_a), set(keys_b)
    if len(a) != len(keys_a) or len(b) != len(keys_b):
        raise NotComparableError(f"{names[0] if len(a) != len(keys_a) else names[1]} holds the same item twice")
    if a != b:
        only_a, only_b = sorted(a - b), sorted(b - a)
        example = (only_a or only_b)[0]
        raise NotComparableError(
            f"{names[0]} and {names[1]} do not share prompts and seeds: {len(a & b)} (item_id, prompt, seed) in "
            f"common, {len(only_a)} only in {names[0]}, {len(only_b)} only in {names[1]} (e.g. {example}). "
            "Evaluate both with the same --prompts, --images-per-prompt and --seed.")


def compare_records(a: dict[str, list], b: dict[str, list], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                    level: float = DEFAULT_LEVEL) -> dict:
    """The comparison numbers from two column dicts (item_id, prompt_index, has_artifacts, labels, reward)."""
    index_b = {item: k for k, item in enumerate(b["item_id"])}
    order = [index_b[item] for item in a["item_id"]]
    prompts = np.asarray(a["prompt_index"], dtype=np.int64)
    clusters, cluster_of = np.unique(prompts, return_inverse=True)

    def flags(columns, rows):
        has = [columns["has_artifacts"][r] for r in rows]
        parsed = np.array([h is not None for h in has])
        matrix = np.zeros((len(rows), 1 + len(CLASS_NAMES)))
        matrix[:, 0] = [bool(h) for h in has]
        column = {name: 1 + k for k, name in enumerate(CLASS_NAMES)}
        for i, r in enumerate(rows):
            for label in set(columns["labels"][r]):
                if label in column:
                    matrix[i, column[label]] = 1
        return parsed, matrix

    parsed_a, fa = flags(a, range(len(a["item_id"])))
    parsed_b, fb = flags(b, order)
    both = (parsed_a & parsed_b).astype(np.float64)
    ra = np.asarray(a["reward"], dtype=np.float64)
    rb = np.asarray(b["reward"], dtype=np.float64)[order]
    k = fa.shape[1]

    def per_prompt(values):  # (n, m) -> (clusters, m) sums
        out = np.zeros((len(clusters), values.shape[1]))
        np.add.at(out, cluster_of, values)
        return out

    num = per_prompt(np.column_stack([fa * both[:, None], fb * both[:, None], (fb - fa) * both[:, None],
                                      ra, rb, rb - ra]))
    den_pairs = per_prompt(both[:, None])
    den_all = per_prompt(np.ones((len(ra), 1)))
    den = np.column_stack([np.repeat(den_pairs, 3 * k, axis=1), np.repeat(den_all, 3, axis=1)])
    boot = cluster_bootstrap(num, den, resamples=resamples, seed=seed, level=level)

    def entry(j, count=None, total=None):
        value = {"estimate": _num(boot.estimate[j]), "ci_low": _num(boot.low[j]), "ci_high": _num(boot.high[j])}
        if count is not None:
            value["count"], value["total"] = int(count), int(total)
        return value

    n_both = int(both.sum())
    mask = both.astype(bool)
    rows, p_values = [], []
    for j in range(k):
        only_a = int(((fa[:, j] == 1) & (fb[:, j] == 0) & mask).sum())
        only_b = int(((fa[:, j] == 0) & (fb[:, j] == 1) & mask).sum())
        p = mcnemar_exact(only_a, only_b)
        p_values.append(p)
        rows.append({"a": entry(j, (fa[:, j] * both).sum(), n_both), "b": entry(k + j, (fb[:, j] * both).sum(), n_both),
                     "difference": entry(2 * k + j), "flagged_only_a": only_a, "flagged_only_b": only_b,
                     "p_mcnemar": p})
    for row, adjusted in zip(rows, holm(p_values)):
        row["p_holm"] = adjusted
    base = 3 * k
    return {
        "pairs": len(ra),
        "pairs_both_parsed": n_both,
        "prompts": len(clusters),
        "bootstrap": {"unit": "prompt", "paired": True, "resamples": resamples, "seed": seed, "level": level,
                      "interval": "percentile"},
        "test": "McNemar exact (two-sided), Holm-adjusted over the overall and 13 per-class tests",
        "difference": "B - A",
        "artifact_rate": rows[0],
        "per_class": dict(zip(CLASS_NAMES, rows[1:])),
        "mean_reward": {"a": entry(base), "b": entry(base + 1), "difference": entry(base + 2)},
    }


def _num(x) -> float | None:
    return float(x) if np.isfinite(x) else None


def _pct(e: dict, signed: bool = False) -> str:
    if e["estimate"] is None:
        return "n/a"
    sign = "+" if signed else ""
    return (f"{100 * e['estimate']:{sign}.1f} [{100 * e['ci_low']:{sign}.1f}, {100 * e['ci_high']:{sign}.1f}]"
            if e["ci_low"] is not None else f"{100 * e['estimate']:{sign}.1f}")


def _p(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.2g}" if p < 0.001 else f"{p:.3f}")


def comparison_markdown(result: dict, names: tuple[str, str], settings: tuple[dict, dict],
                        figure: str | None = None) -> str:
    level = round(100 * result["bootstrap"]["level"])
    rw = result["mean_reward"]
    lines = [
        "# Generator comparison",
        "",
        f"- A: `{names[0]}` (pipeline `{settings[0]['pipeline']}`"
        + (f" + LoRA `{settings[0]['lora']}`" if settings[0].get("lora") else "") + ")",
        f"- B: `{names[1]}` (pipeline `{settings[1]['pipeline']}`"
        + (f" + LoRA `{settings[1]['lora']}`" if settings[1].get("lora") else "") + ")",
        f"- {result['pairs']} pairs (same prompt and seed) over {result['prompts']} prompts; "
        f"{result['pairs_both_parsed']} with both answers parsed; classifier `{settings[0]['classifier']}`.",
        f"- Rates in % of pairs with both answers parsed; B - A in percentage points (negative: fewer artifacts "
        f"under B); [{level}% paired bootstrap CI over prompts, {result['bootstrap']['resamples']} resamples, seed "
        f"{result['bootstrap']['seed']}]; p: {result['test']}.",
        "",
        "| | A | B | B - A | only A | only B | p (McNemar) | p (Holm) |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for name, row in [("**any artifact**", result["artifact_rate"]), *result["per_class"].items()]:
        lines.append(f"| {name} | {_pct(row['a'])} | {_pct(row['b'])} | {_pct(row['difference'], True)} | "
                     f"{row['flagged_only_a']} | {row['flagged_only_b']} | {_p(row['p_mcnemar'])} | {_p(row['p_holm'])} |")

    def reward(e, signed=False):
        return "n/a" if e["estimate"] is None else (
            f"{e['estimate']:{'+' if signed else ''}.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}]")

    lines += ["", f"Mean Eq. 4 reward: A {reward(rw['a'])}, B {reward(rw['b'])}, B - A {reward(rw['difference'], True)}.",
              ""]
    if figure:
        lines += [f"![rates and differences]({figure})", ""]
    return "\n".join(lines)


def compare_folders(dir_a, dir_b, output, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                    overwrite: bool = False) -> Path:
    """Compare two ``eval-generator`` folders and write ``comparison.json``, ``comparison.md`` and
    ``comparison.png`` to ``output`` (a new folder, swapped into place whole)."""
    from ..hub_folder import check_out_dir, staged_folder
    from .figures import plot_differences
    from .folder import read_eval_folder

    names = (Path(dir_a).name, Path(dir_b).name)
    if Path(dir_a).resolve() == Path(dir_b).resolve():
        raise NotComparableError(f"A and B are the same folder ({dir_a})")
    target = Path(output).resolve()
    for folder in (dir_a, dir_b):
        source = Path(folder).resolve()
        if target == source or source in target.parents or target in source.parents:
            raise NotComparableError(f"--output {output} overlaps the input folder {folder}; inputs are never written to")
    check_out_dir(output, overwrite, looks_like_ours=lambda d: (d / "comparison.json").is_file())
    settings_a, a = read_eval_folder(dir_a)
    settings_b, b = read_eval_folder(dir_b)
    keys = [list(zip(c["item_id"], c["prompt"], c["seed"])) for c in (a, b)]
    check_comparable(settings_a, settings_b, keys[0], keys[1], names=(f"A ({dir_a})", f"B ({dir_b})"))
    result = compare_records(a, b, resamples=resamples, seed=seed)
    result["a"], result["b"] = os.fspath(dir_a), os.fspath(dir_b)
    with staged_folder(Path(output), overwrite=overwrite) as staging:
        (staging / "comparison.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        plot_differences(result, staging / "comparison.png", names=names)
        (staging / "comparison.md").write_text(
            comparison_markdown(result, names, (settings_a, settings_b), figure="comparison.png"), encoding="utf-8")
    return Path(output)
