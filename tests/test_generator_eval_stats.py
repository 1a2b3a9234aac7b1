"""Statistics of generator evaluation on synthetic data with known answers: bootstrap coverage, McNemar vs
the exact binomial (scipy and exact fractions), Holm, the per-prompt counting, and the paired comparison."""

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from synartifact_hf.generator_eval.compare import NotComparableError, check_comparable, compare_records
from synartifact_hf.generator_eval.report import CLASS_NAMES, count_by_prompt, rate_report
from synartifact_hf.generator_eval.statistics import cluster_bootstrap, holm, mcnemar_exact

TRUE_RATE = 0.3


def _clustered(rng, prompts=100, a=0.6, b=1.4):
    """Per-prompt (flagged, images): prompt rates ~ Beta(a, b) (mean 0.3, intra-prompt correlation 1/3),
    2-6 images per prompt."""
    rates = rng.beta(a, b, size=prompts)
    images = rng.integers(2, 7, size=prompts)
    flagged = rng.binomial(images, rates)
    return flagged, images


def _coverage(per_image: bool, datasets: int = 400) -> float:
    hits = 0
    for d in range(datasets):
        flagged, images = _clustered(np.random.default_rng(1000 + d))
        if per_image:  # every image its own cluster: ignores that a prompt's images go together
            flagged = np.concatenate([[1] * f + [0] * (n - f) for f, n in zip(flagged, images)])
            images = np.ones_like(flagged)
        boot = cluster_bootstrap(flagged, images, resamples=500, seed=d)
        hits += boot.low[0] <= TRUE_RATE <= boot.high[0]
    return hits / datasets


def test_bootstrap_over_prompts_covers_95_percent():
    # 400 seeded data sets: a correct 95% interval covers the true rate ~380 times (binomial sd ~4.4)
    assert 0.91 <= _coverage(per_image=False) <= 0.98


def test_bootstrap_over_images_undercovers_clustered_data():
    # the reason to resample prompts: treating images as independent gives intervals that are too narrow
    assert _coverage(per_image=True, datasets=120) < 0.88


def test_paired_difference_interval_covers_the_true_difference():
    hits, datasets, true_difference = 0, 300, -0.3 * TRUE_RATE
    for d in range(datasets):
        rng = np.random.default_rng(5000 + d)
        rates = rng.beta(0.6, 1.4, size=50)
        n = 4
        a = rng.random((50, n)) < rates[:, None]
        b = rng.random((50, n)) < 0.7 * rates[:, None]  # B flags 30% less often, pair by pair correlated
        boot = cluster_bootstrap((b.astype(float) - a).sum(1), np.full(50, n), resamples=500, seed=d)
        hits += boot.low[0] <= true_difference <= boot.high[0]
    assert 0.91 <= hits / datasets <= 0.98


def test_bootstrap_is_seeded_and_estimate_is_the_ratio_of_sums():
    num, den = np.array([[1, 0], [2, 1], [0, 0], [3, 2]]), np.array([2, 3, 1, 4])
    first = cluster_bootstrap(num, den, resamples=300, seed=7)
    again = cluster_bootstrap(num, den, resamples=300, seed=7)
    np.testing.assert_allclose(first.estimate, [6 / 10, 3 / 10])
    np.testing.assert_array_equal(first.low, again.low)
    assert np.all(first.low <= first.estimate) and np.all(first.estimate <= first.high)


def test_bootstrap_seed_changes_the_replicates():
    flagged, images = _clustered(np.random.default_rng(0))
    lows = {float(cluster_bootstrap(flagged, images, resamples=200, seed=s).low[0]) for s in range(5)}
    assert len(lows) > 1


def test_bootstrap_rejects_bad_shapes_and_handles_empty_columns():
    with pytest.raises(ValueError, match="clusters"):
        cluster_bootstrap(np.zeros((3, 2)), np.ones((4, 1)))
    result = cluster_bootstrap(np.zeros((3, 1)), np.zeros((3, 1)), resamples=50)
    assert np.isnan(result.estimate[0]) and np.isnan(result.low[0])


def _exact_mcnemar(b, c):
    n, k = b + c, min(b, c)
    tail = Fraction(sum(comb(n, i) for i in range(k + 1)), 2 ** n)
    return float(min(Fraction(1), 2 * tail))


@pytest.mark.parametrize("b,c", [(0, 0), (0, 1), (1, 0), (3, 12), (12, 3), (5, 5), (0, 25), (7, 30), (40, 41),
                                 (100, 140), (2, 200)])
def test_mcnemar_matches_exact_binomial(b, c):
    from scipy.stats import binomtest

    p = mcnemar_exact(b, c)
    assert p == pytest.approx(_exact_mcnemar(b, c), rel=1e-9, abs=1e-300)
    if b + c:
        assert p == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9, abs=1e-300)


def test_mcnemar_large_tables_vs_scipy():
    from scipy.stats import binomtest

    for b, c in [(4000, 4300), (50_000, 50_600), (10, 20_000)]:
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-7, abs=1e-300)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_holm_hand_computed():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.005, 0.03]) == pytest.approx([0.03, 0.06, 0.02, 0.06])
    assert holm([0.5, float("nan"), 0.9]) == pytest.approx([1.0, float("nan"), 1.0], nan_ok=True)
    assert holm([]) == []


def _records(rows):
    return [{"prompt_index": p, "has_artifacts": h, "labels": labels, "reward": r} for p, h, labels, r in rows]


def test_rate_report_counts_and_definitions():
    blur, dup = "Localized blur", "Duplicated components"
    records = _records([
        (0, True, [blur, dup], 0.5), (0, False, ["No artifacts"], 1.5), (0, None, [], 0.0),
        (1, True, [blur], 1.0), (1, True, ["Other artifacts"], 1.0), (2, False, ["No artifacts"], 1.5),
    ])
    report = rate_report(count_by_prompt(records), resamples=200, seed=0)
    assert (report["images"], report["prompts"], report["parsed"]) == (6, 3, 5)
    assert report["artifact_rate"]["estimate"] == pytest.approx(3 / 5)  # unparsed answers are left out
    assert (report["artifact_rate"]["count"], report["artifact_rate"]["total"]) == (3, 5)
    assert report["parse_rate"]["estimate"] == pytest.approx(5 / 6)
    assert report["mean_reward"]["estimate"] == pytest.approx(5.5 / 6)
    assert report["per_class"][blur]["estimate"] == pytest.approx(2 / 5)
    assert report["per_class"][dup]["count"] == 1 and report["per_class"]["Other artifacts"]["count"] == 1
    assert set(report["per_class"]) == set(CLASS_NAMES)
    for entry in (report["artifact_rate"], report["per_class"][blur]):
        assert entry["ci_low"] <= entry["estimate"] <= entry["ci_high"]


def _columns(flags, prompts, labels=None, reward=None):
    n = len(flags)
    return {"item_id": [f"p{p:05d}-i{k:03d}" for k, p in enumerate(prompts)], "prompt_index": prompts,
            "has_artifacts": flags, "labels": labels or [["Localized blur"] if f else [] for f in flags],
            "reward": reward or [0.0] * n}


def test_compare_records_known_table():
    # 10 pairs over 5 prompts; A flags 6, B flags 2; discordant: 5 only A, 1 only B; one B answer unparsed
    prompts = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    a = _columns([True, True, True, True, True, False, True, False, False, False], prompts, reward=[1.0] * 10)
    b = _columns([False, False, True, False, False, True, None, False, False, False], prompts, reward=[1.5] * 10)
    b["item_id"] = list(reversed(b["item_id"]))  # pairing is by item id, not by row order
    for key in ("prompt_index", "has_artifacts", "labels", "reward"):
        b[key] = list(reversed(b[key]))
    result = compare_records(a, b, resamples=300, seed=1)
    overall = result["artifact_rate"]
    assert result["pairs"] == 10 and result["pairs_both_parsed"] == 9
    assert (overall["flagged_only_a"], overall["flagged_only_b"]) == (4, 1)
    assert overall["a"]["estimate"] == pytest.approx(5 / 9) and overall["b"]["estimate"] == pytest.approx(2 / 9)
    assert overall["difference"]["estimate"] == pytest.approx(-3 / 9)
    assert overall["p_mcnemar"] == pytest.approx(_exact_mcnemar(4, 1))
    assert result["per_class"]["Localized blur"]["p_mcnemar"] == overall["p_mcnemar"]
    assert result["per_class"]["Duplicated components"]["p_mcnemar"] == 1.0
    assert result["mean_reward"]["difference"]["estimate"] == pytest.approx(0.5)
    assert overall["p_holm"] >= overall["p_mcnemar"]


def test_check_comparable_refusals():
    s = {"classifier": "clf", "instruction_sha256": "x"}
    keys = [("p00000-i000", "a cat", 1), ("p00001-i000", "a dog", 2)]
    check_comparable(s, dict(s), keys, list(reversed(keys)))
    with pytest.raises(NotComparableError, match="different classifier"):
        check_comparable(s, {**s, "classifier": "other"}, keys, keys)
    with pytest.raises(NotComparableError, match="instruction"):
        check_comparable(s, {**s, "instruction_sha256": "y"}, keys, keys)
    with pytest.raises(NotComparableError, match="1 only in A"):
        check_comparable(s, s, keys, [keys[0], ("p00001-i000", "a dog", 3)])
