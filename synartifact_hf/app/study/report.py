"""``study report``: what the raters said, as the paper's Fig. 9 plus tests, and all ratings as a dataset.

Output folder (a Hub-ready ``datasets`` folder, so ``load_dataset(DIR)`` gives one row per rating and
``push_to_hub`` publishes it as it is)::

    README.md          card: configs -> default/train-*.parquet, and the results below
    default/train-*.parquet   rater (anonymous id), item_id, prompt, prompt_index, seed, side, model,
                       model_name, score, fewer_artifacts, time
    report.json        everything the card shows, as numbers
    study.png          Fig. 9: mean score per model (bars, 95% CI) and the spread of scores (boxplots)

The numbers:
- mean score per model with a 95% bootstrap CI over prompts (seeded; the images of one prompt and
  the ratings of one image are not independent, prompts are);
- the paired Wilcoxon signed-rank test on per-prompt differences (mean score of B minus mean score
  of A over all raters and images of that prompt: one pair per prompt), two-sided, exact under ties,
  with the matched-pairs rank-biserial correlation as effect size;
- the "fewer artifacts" answers: how often each model was chosen, with an exact two-sided sign test;
- inter-rater agreement: Krippendorff's alpha (ordinal) over images (an item's image from one model)
  rated by two or more raters;
- per-rater counts.
Rater names (given to ``study invite``) stay in the database: the exported rows carry ``rater-NNN``.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from .statistics import krippendorff_alpha, wilcoxon_signed_rank
from .store import MODELS, StudyStore

__all__ = ["FIGURE_FILE", "REPORT_FILE", "draw_figure", "report_markdown", "study_report", "summarize"]

FIGURE_FILE = "study.png"
REPORT_FILE = "report.json"
BOOTSTRAP = 2000


def _bootstrap_mean_ci(sums: np.ndarray, counts: np.ndarray, seed: int = 0) -> tuple[float, float]:
    if len(sums) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(sums), size=(BOOTSTRAP, len(sums)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def _sign_test_p(k: int, n: int) -> float:
    """Exact two-sided binomial test of k successes in n against 1/2."""
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def summarize(store: StudyStore) -> dict:
    """The report's numbers from the database (see the module docstring)."""
    ratings = store.ratings()
    meta = store.meta()
    names = {m: meta.get(f"model_{m}", m) for m in MODELS}
    by_prompt: dict[str, dict[int, list[int]]] = {m: defaultdict(list) for m in MODELS}
    units: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in ratings:
        by_prompt[row["model"]][row["prompt_index"]].append(row["score"])
        units[(row["item_id"], row["model"])].append(row["score"])
    models = {}
    for m in MODELS:
        scores = np.array([s for group in by_prompt[m].values() for s in group], dtype=float)
        prompts = sorted(by_prompt[m])
        sums = np.array([sum(by_prompt[m][p]) for p in prompts], dtype=float)
        counts = np.array([len(by_prompt[m][p]) for p in prompts], dtype=float)
        low, high = _bootstrap_mean_ci(sums, counts)
        models[m] = {"name": names[m], "ratings": len(scores),
                     "mean": float(scores.mean()) if len(scores) else None,
                     "std": float(scores.std(ddof=1)) if len(scores) > 1 else None,
                     "median": float(np.median(scores)) if len(scores) else None,
                     "ci95": [low, high] if len(scores) > 1 else None,
                     "histogram": {str(s): int((scores == s).sum()) for s in range(1, 8)}}
    paired = sorted(set(by_prompt["A"]) & set(by_prompt["B"]))
    differences = [float(np.mean(by_prompt["B"][p]) - np.mean(by_prompt["A"][p])) for p in paired]
    wilcoxon = wilcoxon_signed_rank(differences).to_dict() if differences else None
    chosen = {"A": 0, "B": 0, "same": 0}
    answers: dict[tuple[int, str], dict[str, int]] = defaultdict(dict)
    for row in ratings:
        if row["fewer_artifacts"] is not None:
            answers[(row["rater_id"], row["item_id"])][row["model"]] = row["fewer_artifacts"]
    for answer in answers.values():
        chosen["same" if answer.get("A") == answer.get("B") else ("A" if answer.get("A") else "B")] += 1
    alpha_units = [scores for scores in units.values() if len(scores) >= 2]
    alpha = krippendorff_alpha(alpha_units, "ordinal")
    raters = store.raters()
    return {
        "ratings": len(ratings),
        "raters": len(raters),
        "raters_with_ratings": sum(1 for r in raters if r["rated"]),
        "items": len(store.items()),
        "items_rated": len({row["item_id"] for row in ratings}),
        "models": models,
        "paired_test": {"test": "Wilcoxon signed-rank, two-sided, on per-prompt mean differences (B - A)",
                        "prompts": len(paired), "mean_difference": float(np.mean(differences)) if differences else None,
                        **(wilcoxon or {})},
        "fewer_artifacts": {**chosen, "answers": sum(chosen.values()),
                            "sign_test_p": _sign_test_p(chosen["B"], chosen["A"] + chosen["B"])},
        "agreement": {"krippendorff_alpha_ordinal": None if math.isnan(alpha) else alpha,
                      "units": len(alpha_units), "values": sum(len(u) for u in alpha_units)},
        "per_rater": [{"rater": f"rater-{r['rater_id']:03d}", "rated": r["rated"],
                       "assigned": r["assigned"], "revoked": r["revoked"] is not None} for r in raters],
    }


def draw_figure(summary: dict, ratings: list[dict], path: Path) -> None:
    """Fig. 9 as a PNG at ``path``: mean score per model (bars, 95% CI) and the scores' spread (boxplots)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8), dpi=110)
    bars, boxes = fig.subplots(1, 2)
    labels = [f"{m}: {summary['models'][m]['name']}" for m in MODELS]
    means = [summary["models"][m]["mean"] or 0.0 for m in MODELS]
    cis = [summary["models"][m]["ci95"] for m in MODELS]
    errors = np.array([[mean - ci[0], ci[1] - mean] if ci and not math.isnan(ci[0]) else [0, 0]
                       for mean, ci in zip(means, cis)]).T
    colors = ["#8d99ae", "#2a9d8f"]
    bars.bar(range(2), means, yerr=errors, capsize=6, color=colors)
    for x, m in enumerate(MODELS):
        bars.text(x, 0.15, f"n={summary['models'][m]['ratings']}", ha="center", color="white", fontsize=9)
    bars.set_xticks(range(2), labels=labels, fontsize=8)
    bars.set_ylim(0, 7.3)
    bars.set_ylabel("mean score (1-7)")
    bars.set_title("Mean score per model (95% CI over prompts)", fontsize=10)
    data = [[r["score"] for r in ratings if r["model"] == m] for m in MODELS]
    boxes.boxplot([d or [np.nan] for d in data], patch_artist=True,
                  boxprops={"facecolor": "#edf2f4"}, medianprops={"color": "#e76f51"})
    boxes.set_xticks([1, 2], labels=labels, fontsize=8)
    boxes.set_ylim(0.5, 7.5)
    boxes.set_ylabel("score")
    boxes.set_title("Spread of the scores", fontsize=10)
    test = summary["paired_test"]
    if test.get("p_value") is not None:
        fig.suptitle(f"Wilcoxon signed-rank over {test['prompts']} prompts: p = {test['p_value']:.3g}, "
                     f"rank-biserial r = {test['rank_biserial']:+.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def _fmt(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report_markdown(summary: dict, figure: bool = True) -> str:
    """The report as Markdown (the card's body); ``figure=False`` leaves out the link to the figure."""
    lines = ["# User study: which model's images look better?", "",
             f"{summary['ratings']} ratings by {summary['raters_with_ratings']} of {summary['raters']} raters, "
             f"{summary['items_rated']} of {summary['items']} items (the two images of one prompt and seed, "
             "sides randomised, models hidden; scores 1-7).", ""]
    if figure:
        lines += [f"![Fig. 9: mean score per model and spread]({FIGURE_FILE})", ""]
    lines += ["| model | ratings | mean | 95% CI (prompts) | std | median |", "|---|---|---|---|---|---|"]
    for m in MODELS:
        s = summary["models"][m]
        ci = f"{_fmt(s['ci95'][0], 2)} - {_fmt(s['ci95'][1], 2)}" if s["ci95"] else "-"
        lines.append(f"| {m}: {s['name']} | {s['ratings']} | {_fmt(s['mean'], 2)} | {ci} | {_fmt(s['std'], 2)} | "
                     f"{_fmt(s['median'], 1)} |")
    test = summary["paired_test"]
    lines += ["", f"**Paired test** ({test['test']}): "]
    if test.get("p_value") is None:
        lines[-1] += "no prompt was rated for both models yet."
    else:
        lines[-1] += (f"{test['prompts']} prompts ({test['zeros']} without a difference), mean difference "
                      f"{test['mean_difference']:+.3f}, W+ = {test['w_plus']:g}, W- = {test['w_minus']:g}, "
                      f"p = {test['p_value']:.4g} ({test['method']}), effect size (matched-pairs rank-biserial "
                      f"correlation) r = {test['rank_biserial']:+.3f}.")
    fewer = summary["fewer_artifacts"]
    lines += ["", f"**Fewer artifacts** ({fewer['answers']} answers): A chosen {fewer['A']}, B chosen {fewer['B']}, "
                  f"about the same {fewer['same']}; exact sign test A vs B p = {fewer['sign_test_p']:.4g}."]
    agreement = summary["agreement"]
    lines += ["", f"**Inter-rater agreement**: Krippendorff's alpha (ordinal) = "
                  f"{_fmt(agreement['krippendorff_alpha_ordinal'])} over {agreement['units']} images rated by two "
                  "or more raters (1 = perfect agreement, 0 = chance)."]
    lines += ["", "| rater | items rated | assigned | revoked |", "|---|---|---|---|"]
    lines += [f"| {r['rater']} | {r['rated']} | {r['assigned']} | {'yes' if r['revoked'] else ''} |"
              for r in summary["per_rater"]]
    return "\n".join(lines) + "\n"


def _card(summary: dict, out_dir: Path, staging: Path, dataset) -> str:
    import datasets

    from ...cards import render_card
    from ...hub_folder import configs_yaml, package_version, size_category, yaml_block
    from ...paper import CITATION

    # dataset_info (row count, sizes) also keeps load_dataset(out_dir) honest after --overwrite: datasets
    # keys its cache on the card's metadata, not on the files
    splits = datasets.SplitDict()
    splits.add(datasets.SplitInfo(name="train", num_examples=len(dataset)))
    info = datasets.DatasetInfo(features=dataset.features, splits=splits, config_name="default",
                                download_size=sum(p.stat().st_size for p in staging.glob("default/*.parquet")))
    return render_card("study_ratings_card.md", pretty_name="User study ratings (synartifact-hf)",
                       size_category=size_category(summary["ratings"]),
                       configs_yaml=configs_yaml(["default"], {"default": ["train"]}),
                       dataset_info_yaml=yaml_block([info._to_yaml_dict()]),
                       report=report_markdown(summary), load_path=out_dir.name, version=package_version(),
                       citation=CITATION)


def study_report(db: str | os.PathLike | StudyStore, out_dir: str | os.PathLike, *, overwrite: bool = False,
                 push_to_hub: str | None = None, private: bool = True, token: str | None = None) -> dict:
    """Write the report folder (see the module docstring) and return the summary; ``push_to_hub``
    (a dataset repo id) also uploads the folder."""
    import datasets

    from ...atomic import write_text_atomic
    from ...hub_folder import check_out_dir, progress_bars, staged_folder, write_parquet_shards

    store = db if isinstance(db, StudyStore) else StudyStore(_existing(db))
    if not store.items():
        raise ValueError(f"--db {store.path} holds no study (start one with `synartifact-hf study serve`)")
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)
    summary = summarize(store)
    ratings = store.ratings()
    names = {m: summary["models"][m]["name"] for m in MODELS}
    features = datasets.Features({
        "rater": datasets.Value("string"), "item_id": datasets.Value("string"), "prompt": datasets.Value("string"),
        "prompt_index": datasets.Value("int64"), "seed": datasets.Value("int64"), "side": datasets.Value("string"),
        "model": datasets.Value("string"), "model_name": datasets.Value("string"), "score": datasets.Value("int8"),
        "fewer_artifacts": datasets.Value("int8"), "time": datasets.Value("string")})
    rows = [{"rater": f"rater-{r['rater_id']:03d}", "item_id": r["item_id"], "prompt": r["prompt"],
             "prompt_index": r["prompt_index"], "seed": r["seed"], "side": r["side"], "model": r["model"],
             "model_name": names[r["model"]], "score": r["score"], "fewer_artifacts": r["fewer_artifacts"],
             "time": r["time"]} for r in ratings]
    with progress_bars(False), staged_folder(out_dir, overwrite) as staging:
        (staging / "default").mkdir()
        dataset = datasets.Dataset.from_list(rows, features=features) if rows else _empty(features)
        write_parquet_shards(dataset, staging / "default", "train")
        draw_figure(summary, ratings, staging / FIGURE_FILE)
        write_text_atomic(staging / REPORT_FILE, json.dumps(summary, indent=2) + "\n")
        write_text_atomic(staging / "README.md", _card(summary, out_dir, staging, dataset))
    if push_to_hub:
        from ...data.hub import push_dataset

        summary["pushed"] = push_dataset(out_dir, push_to_hub, private=private, token=token,
                                         commit_message="Upload user-study ratings written by synartifact-hf")
    return summary


def _empty(features):
    import datasets

    return datasets.Dataset.from_dict({name: [] for name in features}, features=features)


def _existing(db) -> Path:
    path = Path(db)
    if not path.is_file():
        raise ValueError(f"--db {path}: no such file (the database `study serve` made)")
    return path
