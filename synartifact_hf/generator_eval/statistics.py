"""The statistics of generator evaluation: rates with cluster-bootstrap confidence intervals, paired
differences, McNemar's exact test and Holm's correction. numpy only.

Why a bootstrap over prompts: the images of one prompt share its content (a prompt that makes hands makes
hands in every image), so they are not independent draws; resampling images would give intervals that
are too narrow. Every estimate here is a ratio of sums over prompts (flagged images / parsed images, sum
of rewards / images), and one bootstrap replicate draws prompts with replacement and recomputes the
ratio from their sums (the percentile interval of those replicates). All statistics of a report share
the same replicates: one seeded draw of prompt weights, so a rerun gives the same intervals.

Paired comparisons (the same prompt and seed under two models) resample prompts too, and the difference
is computed on the pairs where both answers parsed.

McNemar's exact test for paired binary outcomes: of the n discordant pairs (flagged under one model, not
the other), b are flagged only under A; under the null both directions are equally likely, b ~ Bin(n, 1/2),
and the two-sided p-value is min(1, 2 P(X <= min(b, n - b))). The tail is summed in log space (exact up to
float rounding for any n; the tests check it against ``scipy.stats.binomtest`` and exact fractions).

>>> import numpy as np
>>> flagged = np.array([[1, 2], [0, 2], [2, 2], [1, 2]])   # per prompt: (flagged images, images)
>>> est = cluster_bootstrap(flagged[:, :1], flagged[:, 1:], resamples=1000, seed=0)
>>> round(float(est.estimate[0]), 3), bool(est.low[0] <= 0.5 <= est.high[0])
(0.5, True)
>>> round(mcnemar_exact(3, 12), 4)   # 3 of 15 discordant pairs went one way
0.0352
>>> [round(p, 3) for p in holm([0.01, 0.04, 0.03])]
[0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BootstrapResult", "cluster_bootstrap", "holm", "mcnemar_exact", "DEFAULT_RESAMPLES", "DEFAULT_LEVEL"]

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95
_BLOCK = 250  # replicates per matrix product: bounds memory at _BLOCK x prompts weights


@dataclass
class BootstrapResult:
    """Ratio estimates and percentile intervals, one entry per statistic (column)."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    resamples: int
    level: float
    seed: int


def cluster_bootstrap(numerators, denominators, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                      level: float = DEFAULT_LEVEL) -> BootstrapResult:
    """Ratio ``sum(numerators) / sum(denominators)`` per column, with a percentile interval from
    resampling rows (clusters, e.g. prompts) with replacement.

    Args:
        numerators: (clusters, statistics) per-cluster sums (e.g. flagged images per prompt and class).
        denominators: (clusters, statistics) or (clusters, 1) per-cluster counts (e.g. parsed images).
        resamples: bootstrap replicates. seed: numpy seed of the replicates. level: interval coverage.

    A replicate whose denominator is 0 (every drawn cluster has nothing to count) is left out of that
    column's interval; a column with no denominator at all gets NaN.
    """
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.ndim == 1:
        num = num[:, None]
    if den.ndim == 1:
        den = den[:, None]
    if num.ndim != 2 or den.ndim != 2 or len(num) != len(den) or den.shape[1] not in (1, num.shape[1]):
        raise ValueError(f"numerators {num.shape} and denominators {den.shape} must be (clusters, k) and "
                         "(clusters, k or 1)")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    clusters, k = num.shape
    den = np.broadcast_to(den, num.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = num.sum(0) / den.sum(0)
    if clusters == 0:
        nan = np.full(k, np.nan)
        return BootstrapResult(nan, nan.copy(), nan.copy(), resamples, level, seed)
    rng = np.random.default_rng(seed)
    replicates = np.empty((resamples, k))
    for start in range(0, resamples, _BLOCK):
        n = min(_BLOCK, resamples - start)
        # How often each cluster is drawn in each replicate: one multinomial draw per replicate.
        weights = rng.multinomial(clusters, np.full(clusters, 1.0 / clusters), size=n).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            replicates[start:start + n] = (weights @ num) / (weights @ den)
    alpha = (1 - level) / 2
    low, high = np.full(k, np.nan), np.full(k, np.nan)
    for j in range(k):
        column = replicates[:, j]
        column = column[np.isfinite(column)]
        if len(column):
            low[j], high[j] = np.quantile(column, [alpha, 1 - alpha])
    return BootstrapResult(estimate, low, high, resamples, level, seed)


def _log_binom_cdf_half(k: int, n: int) -> float:
    """log P(X <= k) for X ~ Bin(n, 1/2)."""
    i = np.arange(k + 1, dtype=np.float64)
    log_pmf = (math.lgamma(n + 1) - np.vectorize(math.lgamma)(i + 1) - np.vectorize(math.lgamma)(n - i + 1)
               - n * math.log(2))
    top = log_pmf.max()
    return float(top + math.log(np.exp(log_pmf - top).sum()))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` (yes/no) and ``c`` (no/yes)."""
    b, c = int(b), int(c)
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * math.exp(_log_binom_cdf_half(min(b, c), n)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order; NaN stays NaN
    and does not count as a test."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()
