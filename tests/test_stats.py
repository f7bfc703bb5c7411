"""training/stats.py: paired differences, probability of improvement and IQM with bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import trim_mean

from mmrl_training import stats


@pytest.fixture
def baseline() -> np.ndarray:
    return np.random.default_rng(3).normal(0.8, 0.05, 20)  # a seed-to-seed spread much larger than the effects


@pytest.mark.parametrize("shift", [0.02, -0.01])
def test_a_constant_shift_on_every_seed_is_found_exactly(baseline, shift):
    """The shared seed noise cancels in the pairs: Δ = c with a zero-width interval, though the
    spread over seeds (std 5 points) is larger than the shift."""
    delta = stats.paired_difference(baseline + shift, baseline)
    assert delta.estimate == pytest.approx(shift)
    assert delta.low == pytest.approx(shift) and delta.high == pytest.approx(shift)
    assert delta.verdict() == ("better" if shift > 0 else "worse")
    p = stats.probability_of_improvement(baseline + shift, baseline)
    assert (p.estimate, p.low, p.high) == ((1.0,) * 3 if shift > 0 else (0.0,) * 3)


def test_a_small_effect_in_noise_has_a_tight_interval_around_it(baseline):
    noise = np.random.default_rng(4).normal(0.0, 0.002, baseline.size)
    delta = stats.paired_difference(baseline + 0.01 + noise, baseline)
    assert delta.low < delta.estimate < delta.high
    assert 0.0 < delta.low and delta.high - delta.low < 0.005
    assert delta.estimate == pytest.approx(0.01 + noise.mean())


def test_symmetric_noise_is_undecided(baseline):
    """Differences ±x in equal numbers: mean 0, an interval containing 0, P(improvement) = 1/2."""
    d = np.random.default_rng(5).uniform(0.01, 0.03, baseline.size // 2)
    policy = baseline + np.concatenate([d, -d])
    delta = stats.paired_difference(policy, baseline)
    assert delta.estimate == pytest.approx(0.0, abs=1e-12)
    assert delta.low < 0.0 < delta.high and delta.verdict() == "undecided"
    p = stats.probability_of_improvement(policy, baseline)
    assert p.estimate == pytest.approx(0.5) and p.low < 0.5 < p.high


def test_the_interval_matches_the_normal_approximation_for_many_seeds():
    """The right confidence level on the right axis: with 400 normal differences the bootstrap
    interval of the mean is close to mean ± 1.96 s / sqrt(n)."""
    rng = np.random.default_rng(6)
    base = rng.normal(0.8, 0.05, 400)
    diff = rng.normal(0.01, 0.02, 400)
    delta = stats.paired_difference(base + diff, base)
    half = 1.96 * diff.std(ddof=1) / math.sqrt(diff.size)
    assert delta.low == pytest.approx(diff.mean() - half, abs=0.15 * half)
    assert delta.high == pytest.approx(diff.mean() + half, abs=0.15 * half)


def test_ties_count_one_half():
    base = np.array([0.5, 0.5, 0.5, 0.5])
    assert stats.probability_of_improvement(base + [0.1, 0.0, -0.1, 0.2], base).estimate == pytest.approx(2.5 / 4)
    assert stats.probability_of_improvement(base, base).estimate == 0.5


def test_iqm_is_the_trimmed_mean_and_resists_outliers(baseline):
    values = baseline.copy()
    values[:2] = [0.1, 0.15]  # two diverging seeds
    iqm = stats.iqm(values)
    assert iqm.estimate == pytest.approx(trim_mean(values, 0.25))
    assert iqm.low < iqm.estimate < iqm.high
    assert abs(iqm.estimate - np.median(baseline)) < abs(values.mean() - np.median(baseline))


def test_tables_are_reproducible(baseline):
    policy = baseline + np.random.default_rng(7).normal(0.005, 0.01, baseline.size)
    first = stats.paired_difference(policy, baseline)
    assert stats.paired_difference(policy, baseline) == first  # the bootstrap's generator is seeded
    assert stats.paired_difference(policy, baseline, seed=1) != first  # ... by SEED, not by chance


def test_missing_values_drop_their_pair_and_one_pair_has_no_interval():
    base = np.array([0.5, 0.6, np.nan, 0.7])
    policy = np.array([0.6, np.nan, 0.9, 0.8])
    both = stats.compare({"p": {"acc": policy}, "b": {"acc": base}}, "b", metrics=("acc",))
    assert both["p"].pairs == 2 and both["p"].delta["acc"].estimate == pytest.approx(0.1)
    one = stats.paired_difference([0.9], [0.5])
    assert one.estimate == pytest.approx(0.4) and math.isnan(one.low) and one.verdict() == "undecided"
    assert math.isnan(stats.iqm([np.nan, np.nan]).estimate)


def test_compare_every_policy_against_the_baseline(baseline):
    values = {name: {m: baseline + shift for m in stats.HEADLINE} for name, shift in (("a", 0.01), ("base", 0.0))}
    result = stats.compare(values, "base")
    assert list(result) == ["a", "base"]
    assert result["base"].delta["fused_acc"].estimate == 0.0 and result["base"].improvement.estimate == 0.5
    assert result["a"].iqm.estimate == pytest.approx(trim_mean(baseline + 0.01, 0.25))
    with pytest.raises(KeyError, match="baseline 'nope'"):
        stats.compare(values, "nope")


def test_no_verdict_below_the_minimum_number_of_seeds(baseline):
    """Issue 27: 2 seeds gave 'better' (a percentile bootstrap over 2 differences is their range).
    Below MIN_SEEDS pairs the interval is kept but the comparison gives no verdict."""
    values = {"p": {m: baseline + 0.02 + np.linspace(0, 0.01, baseline.size) for m in stats.HEADLINE},
              "b": {m: baseline for m in stats.HEADLINE}}
    few = {k: {m: v[:2] for m, v in d.items()} for k, d in values.items()}
    c = stats.compare(few, "b")["p"]
    assert c.pairs == 2 and c.delta["fused_acc"].verdict() == "better" and c.verdict() == stats.NO_VERDICT
    enough = {k: {m: v[:stats.MIN_SEEDS] for m, v in d.items()} for k, d in values.items()}
    assert stats.compare(enough, "b")["p"].verdict() == "better"
