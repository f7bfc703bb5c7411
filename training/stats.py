"""Paired, interval-based comparisons of policies over seeds (numpy and scipy only).

Why: the seed-to-seed spread of a method's test accuracy (4-16 points on small data) is
larger than most differences between methods, so mean ± std over a few seeds cannot rank
them. Every policy runs on the same seeds with the same initial weights and data order
(common random numbers), so the per-seed difference to a baseline cancels the noise the two
share; what is left is judged by a 95 % bootstrap interval, as Agarwal et al. (2021, "Deep RL
at the edge of the statistical precipice") recommend:

- ``paired_difference``: the mean per-seed difference (policy − baseline);
- ``probability_of_improvement``: the fraction of seeds on which the policy beats the
  baseline, ties counting 1/2 (paired, so the per-seed version of the paper's P(X > Y));
- ``iqm``: the interquartile mean of one policy's values (``scipy.stats.trim_mean(x, 0.25)``),
  robust to a few outlying seeds. The paper's *stratified* bootstrap resamples seeds within
  each task; with one env (one task) it is the plain bootstrap over seeds used here.

Choices: the percentile bootstrap (rliable's default), not BCa: BCa's jackknife acceleration
is erratic with 5-20 seeds and undefined when every difference is equal (it returns NaN), and
the IQM and win fractions take few distinct values. 10 000 resamples with a fixed generator
seed, so the same results give the same table. A seed on which either side has no value (the
inner run diverged before its test) is left out of that pair.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000
SEED = 0  # the bootstrap's own generator: reproducible tables, independent of the runs' seeds
IQM_TRIM = 0.25  # trim_mean proportion cut from each end: the middle 50 %
HEADLINE = ("fused_acc", "fused_f1", "fused_map")  # the metrics compared against the baseline
# Below this many seed pairs the interval is printed but no better/worse verdict is given: the
# percentile bootstrap of a mean over n seeds is too narrow for small n (it resamples the n
# values themselves; with 2 it is just their range). bench/interval_coverage.py (BENCHMARKS.md,
# "Interval coverage"): a nominal 95 % interval covers the true difference 50 % of the time at
# 2 seeds, 83 % at 5, 89-92 % at 10 and 92-93 % at 20 (normal and heavy-tailed differences), so
# a false verdict on a null effect comes 50 %, 17 %, 8-11 % and 7-8 % of the time.
MIN_SEEDS = 10
NO_VERDICT = "no verdict"


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval (NaN bounds: fewer than two values)."""

    estimate: float
    low: float
    high: float

    def verdict(self) -> str:
        """For a difference: ``better`` when the interval lies above 0, ``worse`` below, else ``undecided``."""
        if self.low > 0:
            return "better"
        if self.high < 0:
            return "worse"
        return "undecided"  # contains 0, or no interval (NaN compares False)


@dataclass(frozen=True)
class Comparison:
    """One policy against the baseline on ``pairs`` seeds."""

    pairs: int
    delta: dict[str, Interval]  # metric -> mean paired difference (policy − baseline)
    improvement: Interval  # P(policy > baseline) on the first headline metric
    iqm: Interval  # IQM of the policy's own first headline metric

    def verdict(self) -> str:
        """The first headline metric's verdict; :data:`NO_VERDICT` below :data:`MIN_SEEDS` pairs."""
        return self.delta[HEADLINE[0]].verdict() if self.pairs >= MIN_SEEDS else NO_VERDICT


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return stats.trim_mean(x, IQM_TRIM, axis=axis)


def bootstrap_interval(values: Sequence[float] | np.ndarray, statistic: Callable[..., np.ndarray],
                       confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """``statistic`` of the finite ``values`` with its percentile-bootstrap interval
    (``scipy.stats.bootstrap``; ``statistic`` takes an ``axis`` keyword)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    estimate = float(statistic(x, axis=-1))
    if x.size < 2:  # one seed: no spread to resample
        return Interval(estimate, float("nan"), float("nan"))
    if np.ptp(x) == 0:  # every resample is the same sample (scipy would differ from it by rounding only)
        return Interval(estimate, estimate, estimate)
    ci = stats.bootstrap((x,), statistic, n_resamples=resamples, confidence_level=confidence, method="percentile",
                         vectorized=True, rng=np.random.default_rng(seed)).confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high))


def _pairs(policy: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-seed differences policy − baseline where both are finite (same seed order)."""
    x, y = np.asarray(policy, dtype=float), np.asarray(baseline, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired values need one value per seed on both sides, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep] - y[keep]


def paired_difference(policy: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray,
                      **kwargs: float) -> Interval:
    """Mean over seeds of (policy − baseline) with its bootstrap interval over seeds."""
    return bootstrap_interval(_pairs(policy, baseline), _mean, **kwargs)


def probability_of_improvement(policy: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray,
                               **kwargs: float) -> Interval:
    """P(policy > baseline) over seeds, a tie counting 1/2, with its bootstrap interval."""
    d = _pairs(policy, baseline)
    return bootstrap_interval((d > 0) + 0.5 * (d == 0), _mean, **kwargs)


def iqm(values: Sequence[float] | np.ndarray, **kwargs: float) -> Interval:
    """Interquartile mean (``trim_mean(x, 0.25)``) of the finite values with its bootstrap interval."""
    return bootstrap_interval(values, _iqm, **kwargs)


def compare(values: Mapping[str, Mapping[str, Sequence[float]]], baseline: str,
            metrics: Sequence[str] = HEADLINE) -> dict[str, Comparison]:
    """``values``: policy -> metric -> one value per seed (the same seeds in the same order for
    every policy). Every policy, the baseline included (its differences are 0), against
    ``baseline``; P(improvement) and the IQM are of ``metrics[0]``."""
    if baseline not in values:
        raise KeyError(f"baseline {baseline!r} is not among the compared policies {list(values)}")
    base, first = values[baseline], metrics[0]
    out = {}
    for name, v in values.items():
        out[name] = Comparison(
            pairs=int(_pairs(v[first], base[first]).size),
            delta={m: paired_difference(v[m], base[m]) for m in metrics},
            improvement=probability_of_improvement(v[first], base[first]),
            iqm=iqm(v[first]))
    return out
