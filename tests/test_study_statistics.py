"""The user study's statistics against references: the signed-rank test against scipy (exact method
without ties, normal approximation with ties) and against brute-force enumeration of every sign
pattern (exact under ties, where scipy has no exact method); Krippendorff's alpha against
Krippendorff's own worked example (2011, "Computing Krippendorff's alpha-reliability": 4 observers,
12 units, missing values) and a case computed by hand. scipy is a test dependency only (see
synartifact_hf/app/study/statistics.py for why)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synartifact_hf.app.study.statistics import krippendorff_alpha, wilcoxon_signed_rank

stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("n", [6, 15, 40])
def test_exact_p_matches_scipy_without_ties(n):
    d = np.random.default_rng(n).normal(0.4, 1.0, n)
    ours = wilcoxon_signed_rank(d)
    theirs = stats.wilcoxon(d, method="exact")
    assert ours.method == "exact" and ours.statistic == theirs.statistic
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)


def test_normal_approximation_matches_scipy_with_ties_and_zeros():
    d = np.random.default_rng(1).integers(-4, 5, 300) / 2  # halves: many ties, some zeros
    ours = wilcoxon_signed_rank(d, exact_max_n=0)
    theirs = stats.wilcoxon(d, method="approx", correction=True, zero_method="wilcox")
    assert ours.method == "normal" and ours.zeros == int((d == 0).sum())
    assert ours.statistic == theirs.statistic
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)


def test_exact_p_under_ties_equals_enumerating_every_sign_pattern():
    d = np.array([0.5, -0.5, 1.0, 1.0, 1.5, -1.0, 2.0, 0.5, 3.0, 1.5, -2.0, 0.0])
    result = wilcoxon_signed_rank(d)
    nonzero = d[d != 0]
    ranks = stats.rankdata(np.abs(nonzero))  # mid-ranks
    observed = abs(ranks[nonzero > 0].sum() - ranks.sum() / 2)
    extreme = sum(abs(sum(r for r, s in zip(ranks, signs) if s) - ranks.sum() / 2) >= observed - 1e-12
                  for signs in itertools.product([0, 1], repeat=len(ranks)))
    assert result.method == "exact" and result.n == 11 and result.zeros == 1
    assert result.p_value == pytest.approx(extreme / 2 ** len(ranks), rel=1e-12)


def test_effect_size_and_degenerate_inputs():
    all_positive = wilcoxon_signed_rank([1, 2, 3, 4])
    assert all_positive.rank_biserial == 1.0 and all_positive.p_value == pytest.approx(2 / 16)
    assert wilcoxon_signed_rank([-1, -2, 3]).rank_biserial == pytest.approx((3 - 3) / 6)
    nothing = wilcoxon_signed_rank([0, 0, 0])
    assert nothing.n == 0 and nothing.p_value == 1.0
    with pytest.raises(ValueError, match="finite"):
        wilcoxon_signed_rank([1.0, float("nan")])


def test_krippendorff_reproduces_the_published_example():
    observers = [  # Krippendorff (2011), section E; None = missing
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[v for v in unit if v is not None] for unit in zip(*observers)]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_hand_computed_case():
    # units {1,1}, {2,2}, {1,2}: coincidences o11 = o22 = 2, o12 = o21 = 1; n1 = n2 = 3, n = 6.
    # ordinal delta^2(1,2) = (n1 + n2 - (n1 + n2) / 2)^2 = 9; alpha = 1 - (n-1) * 2*9 / (2 * 3*3 * 9) = 4/9
    assert krippendorff_alpha([[1, 1], [2, 2], [1, 2]], "ordinal") == pytest.approx(4 / 9)
    assert krippendorff_alpha([[1, 1], [2, 2], [1, 2]], "nominal") == pytest.approx(4 / 9)
    assert krippendorff_alpha([[3, 3], [5, 5, 5]]) == pytest.approx(1.0)  # perfect agreement
    assert np.isnan(krippendorff_alpha([[4], [2]]))  # nothing pairable
    assert np.isnan(krippendorff_alpha([[4, 4], [4, 4]]))  # no variation
    with pytest.raises(ValueError, match="metric"):
        krippendorff_alpha([[1, 2]], "ratio")
