"""Coverage of ``evaluate.py``'s interval (``training/stats.py``: the 95 % percentile bootstrap of
the mean paired difference) at a given number of seeds: how often it contains the true mean.

Per-seed differences are drawn from a known distribution (true mean 0.5 points), the interval
is computed exactly as ``mmrl_training.stats.paired_difference`` does (``scipy.stats.bootstrap``,
percentile; ``--resamples`` resamples to keep the run short), and the fraction of ``--trials``
intervals that contain the true mean is the coverage (nominal 0.95). Distributions: normal;
Student t with 3 degrees of freedom (heavy tails: a few seeds far off); a skewed mixture (90 %
normal, 10 % a seed 6 std lower, like a run that trained badly). Also reported: how often the
interval excludes 0 when the true difference is 0 (a false "better"/"worse" verdict; nominal
0.05). This is what sets ``mmrl_training.stats.MIN_SEEDS``.

    python bench/interval_coverage.py --seeds 2 3 5 10 20 --trials 2000
"""

from __future__ import annotations

import argparse

import numpy as np

from mmrl_training.stats import paired_difference

TRUE_MEAN = 0.5


def draw(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` per-seed differences with mean 0 and variance 1."""
    if kind == "normal":
        return rng.standard_normal(n)
    if kind == "t3":
        return rng.standard_t(3, n) / np.sqrt(3.0)  # t_3 has variance 3
    bad = rng.random(n) < 0.1  # skewed: 10 % of the seeds 6 std lower
    x = rng.standard_normal(n) - 6.0 * bad
    return (x + 0.6) / np.sqrt(1 + 0.09 * 36)  # mean 0, variance 1


def coverage(kind: str, n: int, trials: int, resamples: int, seed: int) -> tuple[float, float]:
    """(coverage of the true mean, rate of a verdict when the true difference is 0)."""
    rng = np.random.default_rng(seed)
    covered = false_verdict = 0
    for _ in range(trials):
        x = draw(kind, rng, n)
        ci = paired_difference(x + TRUE_MEAN, np.zeros(n), resamples=resamples)
        covered += ci.low <= TRUE_MEAN <= ci.high
        null = paired_difference(x, np.zeros(n), resamples=resamples)
        false_verdict += null.verdict() != "undecided"
    return covered / trials, false_verdict / trials


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 5, 10, 20])
    p.add_argument("--trials", type=int, default=2000)
    p.add_argument("--resamples", type=int, default=2000)
    p.add_argument("--rng", type=int, default=0)
    a = p.parse_args()
    kinds = ("normal", "t3", "skewed")
    print("| seeds | " + " | ".join(f"coverage, {k}" for k in kinds) + " | "
          + " | ".join(f"false verdict, {k}" for k in kinds) + " |")
    print("|---:|" + "---:|" * (2 * len(kinds)))
    for n in a.seeds:
        rows = [coverage(k, n, a.trials, a.resamples, a.rng + n) for k in kinds]
        print(f"| {n} | " + " | ".join(f"{c:.3f}" for c, _ in rows) + " | "
              + " | ".join(f"{f:.3f}" for _, f in rows) + " |", flush=True)


if __name__ == "__main__":
    main()
