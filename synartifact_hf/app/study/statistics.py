"""The user study's statistics: the paired Wilcoxon signed-rank test (with its effect size) and
Krippendorff's alpha (inter-rater agreement), in numpy only.

Why not scipy: Krippendorff's alpha is not in scipy at all, and for the signed-rank test the study's
data is the case scipy handles least well: scores on a 1-7 scale averaged per prompt give many tied
differences, where ``scipy.stats.wilcoxon`` falls back to the normal approximation. Here the p-value
is exact under ties too (the sign-flip distribution of the mid-ranks, counted on doubled ranks, which
are integers) up to :data:`EXACT_MAX_N` pairs, and the tie-corrected normal approximation above. So
the report needs no dependency beyond the core's, and scipy is a test dependency: the tests check this
module against ``scipy.stats.wilcoxon``, against brute-force enumeration, and against Krippendorff's
own worked example.

>>> result = wilcoxon_signed_rank([1.5, 2.0, -0.5, 3.0, 1.0])
>>> result.n, result.w_plus, result.w_minus, round(result.p_value, 4), result.method
(5, 14.0, 1.0, 0.125, 'exact')
>>> round(result.rank_biserial, 3)
0.867
>>> round(krippendorff_alpha([[1, 1], [2, 2], [1, 2]], "ordinal"), 4)  # 1 - 5 * 18 / 162
0.4444
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["EXACT_MAX_N", "METRICS", "WilcoxonResult", "krippendorff_alpha", "wilcoxon_signed_rank"]

EXACT_MAX_N = 500  # pairs up to which the p-value is exact (~1.5 s at 500 on a loaded 2-core CPU); normal above
METRICS = ("nominal", "ordinal", "interval")


@dataclass(frozen=True)
class WilcoxonResult:
    """A two-sided paired Wilcoxon signed-rank test of ``differences`` (zero differences dropped,
    Wilcoxon's own treatment; tied magnitudes get mid-ranks).

    ``rank_biserial`` is the matched-pairs rank-biserial correlation ``(W+ - W-) / (W+ + W-)`` in
    [-1, 1]: the share of rank mass favouring positive differences minus the share favouring negative
    ones (Kerby 2014); 0 means no effect. ``statistic`` is ``min(W+, W-)``, as scipy reports it.
    """

    n: int  # non-zero differences
    zeros: int  # zero differences dropped
    w_plus: float
    w_minus: float
    statistic: float
    p_value: float
    method: str  # "exact" or "normal"
    rank_biserial: float
    median_difference: float

    def to_dict(self) -> dict:
        return asdict(self)


def _mid_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(len(values))
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2  # mean of the ranks start+1 .. end
            start = end
    return ranks


def _exact_p(doubled_ranks: np.ndarray, doubled_w_plus: int) -> float:
    """P(|W+ - E| >= |observed - E|) when each rank's sign is a fair coin, on doubled (integer) ranks."""
    total = int(doubled_ranks.sum())
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    for rank in doubled_ranks:  # the distribution of the sum of the positive ranks, one rank at a time
        shifted = np.zeros_like(dist)
        shifted[rank:] = dist[: total + 1 - rank]
        dist = 0.5 * (dist + shifted)
    deviation = abs(2 * doubled_w_plus - total)  # twice |W+ - total/2|, in doubled units
    sums = np.arange(total + 1)
    return float(min(1.0, dist[np.abs(2 * sums - total) >= deviation].sum()))


def _normal_p(ranks: np.ndarray, w_plus: float) -> float:
    n = len(ranks)
    mean = n * (n + 1) / 4
    variance = float((ranks**2).sum()) / 4  # equals n(n+1)(2n+1)/24 without ties, smaller with them
    if variance == 0:
        return 1.0
    z = (abs(w_plus - mean) - 0.5) / math.sqrt(variance)  # continuity-corrected
    return float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


def wilcoxon_signed_rank(differences: Sequence[float], *, exact_max_n: int = EXACT_MAX_N) -> WilcoxonResult:
    """Two-sided signed-rank test of paired ``differences`` (e.g. per-prompt mean score of B minus A).

    Raises ``ValueError`` for non-finite values; with no non-zero difference the p-value is 1."""
    d = np.asarray(differences, dtype=float).ravel()
    if not np.isfinite(d).all():
        raise ValueError("wilcoxon_signed_rank: differences must be finite numbers")
    nonzero = d[d != 0]
    n = len(nonzero)
    median = float(np.median(d)) if len(d) else float("nan")
    if n == 0:
        return WilcoxonResult(0, len(d), 0.0, 0.0, 0.0, 1.0, "exact", 0.0, median)
    ranks = _mid_ranks(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    w_minus = float(ranks[nonzero < 0].sum())
    if n <= exact_max_n:
        doubled = np.rint(2 * ranks).astype(np.int64)  # mid-ranks are multiples of 1/2
        p_value, method = _exact_p(doubled, int(doubled[nonzero > 0].sum())), "exact"
    else:
        p_value, method = _normal_p(ranks, w_plus), "normal"
    return WilcoxonResult(n=n, zeros=len(d) - n, w_plus=w_plus, w_minus=w_minus, statistic=min(w_plus, w_minus),
                          p_value=p_value, method=method, rank_biserial=(w_plus - w_minus) / (w_plus + w_minus),
                          median_difference=median)


def _distances(values: np.ndarray, marginals: np.ndarray, metric: str) -> np.ndarray:
    """Krippendorff's squared difference function delta^2(c, k) between the sorted ``values``."""
    if metric == "nominal":
        return 1.0 - np.eye(len(values))
    if metric == "interval":
        return (values[:, None] - values[None, :]) ** 2
    # ordinal: (sum of the marginals from c to k, minus half of the two ends' own)^2
    cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
    low = np.minimum.outer(np.arange(len(values)), np.arange(len(values)))
    high = np.maximum.outer(np.arange(len(values)), np.arange(len(values)))
    between = cumulative[high + 1] - cumulative[low]
    return (between - (marginals[:, None] + marginals[None, :]) / 2) ** 2


def krippendorff_alpha(units: Sequence[Sequence[float]], metric: str = "ordinal") -> float:
    """Krippendorff's alpha of ``units``: one list of values per unit (an image), one value per rater
    who rated it (missing ratings are simply absent). Units with fewer than two values carry no
    information about agreement and are left out, as Krippendorff prescribes.

    ``metric`` is ``"ordinal"`` (the 1-7 scale: ranks matter, distances do not), ``"interval"`` or
    ``"nominal"``. Returns ``nan`` when fewer than two values are pairable or all values are equal
    (no variation to agree on). 1 is perfect agreement, 0 agreement at chance level.
    """
    if metric not in METRICS:
        raise ValueError(f"krippendorff_alpha: metric must be one of {METRICS}, got {metric!r}")
    pairable = [np.asarray(u, dtype=float) for u in units if len(u) >= 2]
    if not pairable:
        return float("nan")
    values = np.unique(np.concatenate(pairable))
    if not np.isfinite(values).all():
        raise ValueError("krippendorff_alpha: values must be finite numbers")
    index = {v: i for i, v in enumerate(values)}
    coincidences = np.zeros((len(values), len(values)))
    for unit in pairable:
        counts = np.bincount([index[v] for v in unit], minlength=len(values)).astype(float)
        # every ordered pair of values from different raters, weighted 1 / (m_u - 1)
        coincidences += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    marginals = coincidences.sum(axis=1)
    total = marginals.sum()
    delta = _distances(values, marginals, metric)
    expected = (np.outer(marginals, marginals) - np.diag(marginals)) * delta
    if total < 2 or expected.sum() == 0:
        return float("nan")
    return float(1.0 - (total - 1) * (coincidences * delta).sum() / expected.sum())
