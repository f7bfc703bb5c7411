"""BSS pacing functions, the proportion map, and the rank / learned curricula (eqs. 7–11)."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from mmrl_env.samplers.curriculum import (
    LearnedCurriculum,
    Pacing,
    ProportionMap,
    RankCurriculum,
    ema_update,
    make_curriculum,
    rank,
    subset_size,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("t", "expected"), [(0, 0.1), (10, 0.507444578254611), (40, 1.0), (100, 1.0)])
def test_root_pacing_eq7(t, expected):
    assert Pacing("root", 0.1, 40)(t) == pytest.approx(expected, abs=1e-12)


def test_root_pacing_matches_formula_everywhere():
    pace = Pacing("root", lambda0=0.2, t_grow=10)
    for t in range(15):
        assert pace(t) == pytest.approx(min(1.0, math.sqrt((1 - 0.04) / 10 * t + 0.04)))


@pytest.mark.parametrize(("kind", "t", "expected"), [
    ("linear", 0, 0.1), ("linear", 20, 0.55), ("linear", 60, 1.0),
    ("baby_step", 9, 0.1), ("baby_step", 10, 0.325), ("baby_step", 39, 0.775), ("baby_step", 40, 1.0),
])
def test_other_pacings(kind, t, expected):
    assert Pacing(kind, 0.1, 40, steps=4)(t) == pytest.approx(expected)


def test_pacing_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown pacing"):
        Pacing("cubic")
    with pytest.raises(ValueError, match="lambda0"):
        Pacing("root", lambda0=0.0)


def test_proportion_map_is_linear_and_invertible():
    pm = ProportionMap(0.1)
    assert pm.proportion(np.array([-1.0])) == pytest.approx(0.1)
    assert pm.proportion(np.array([0.0])) == pytest.approx(0.55)
    assert pm.proportion(np.array([1.0])) == pytest.approx(1.0)
    assert pm.proportion(np.array([5.0])) == pytest.approx(1.0)  # clipped
    for proportion in (0.1, 0.3, 0.77, 1.0):
        assert pm.proportion(pm.action(proportion)) == pytest.approx(proportion, abs=1e-6)
    assert pm.action(0.01)[0] == -1.0


def test_subset_size_is_ceiling_without_float_noise():
    assert subset_size(400, 0.1) == 40
    assert subset_size(400, 0.101) == 41
    assert subset_size(400, 1e-9) == 1
    assert subset_size(400, 1.0) == 400


def test_rank_curriculum_takes_top_lambda_and_shuffles():
    score = torch.tensor([0.3, -0.5, 0.9, 0.1, 0.7, -0.2, 0.0, 0.5, -0.9, 0.2])
    sched = RankCurriculum()
    sched.update(score)
    order = sched.order(0.3, gen(0))
    assert sorted(order.tolist()) == [2, 4, 7]  # the three highest scores
    assert torch.equal(rank(score)[:3], torch.tensor([2, 4, 7]))
    orders = {tuple(sched.order(1.0, gen(s)).tolist()) for s in range(5)}
    assert len(orders) > 1  # reshuffled with each generator state
    assert all(sorted(o) == list(range(10)) for o in orders)
    assert torch.equal(sched.order(0.5, gen(3)), sched.order(0.5, gen(3)))


def test_curriculum_needs_a_measurement_first():
    with pytest.raises(RuntimeError, match="no balance score"):
        RankCurriculum().order(0.5, gen())
    with pytest.raises(ValueError, match="unknown curriculum"):
        make_curriculum("greedy")


def test_ema_update_eq9():
    s1, s2, s3 = torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 1.0])
    s_hat = ema_update(None, s1, 0.6)
    assert torch.equal(s_hat, s1)
    s_hat = ema_update(s_hat, s2, 0.6)
    assert torch.allclose(s_hat, torch.tensor([0.4, 0.0, 0.2]))
    s_hat = ema_update(s_hat, s3, 0.6)
    assert torch.allclose(s_hat, torch.tensor([0.76, 0.6, 0.68]))


def test_learned_probabilities_eq10():
    sched = LearnedCurriculum(beta=0.6)
    sched.update(torch.tensor([1.0, 0.0, -1.0]))
    sched.update(torch.tensor([0.0, 0.0, 1.0]))
    expected = torch.tensor([0.40175958, 0.2693075, 0.32893292], dtype=torch.float64)
    assert torch.allclose(sched.probabilities, expected, atol=1e-7)


def test_learned_draws_follow_p():
    """Eq. 11: n i.i.d. draws per epoch from p; over many epochs the frequencies match p."""
    score = torch.tensor([1.0, 0.0, -1.0, 0.5, -0.3])
    sched = LearnedCurriculum()
    sched.update(score)
    g = gen(123)
    draws = torch.cat([sched.order(1.0, g) for _ in range(4000)])
    assert draws.numel() == 4000 * 5
    counts = torch.bincount(draws, minlength=5).numpy()
    expected = score.double().softmax(0).numpy() * draws.numel()
    assert chisquare(counts, expected).pvalue > 0.01
    assert np.abs(counts / draws.numel() - score.softmax(0).numpy()).max() < 0.01


def test_learned_draw_size_scales_with_lambda():
    sched = LearnedCurriculum()
    sched.update(torch.zeros(400))
    assert sched.order(0.25, gen()).numel() == 100


def test_authors_variant_is_a_weighted_permutation():
    score = torch.tensor([0.9, 0.0, -0.8, 0.5])
    sched = LearnedCurriculum(sampling="authors")
    sched.update(score)
    g = gen(7)
    orders = torch.stack([sched.order(1.0, g) for _ in range(4000)])
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders.tolist())  # without replacement
    w = (1 + score.double()).numpy()
    counts = np.bincount(orders[:, 0].numpy(), minlength=4)
    assert chisquare(counts, w / w.sum() * len(orders)).pvalue > 0.01  # first pick ∝ 1 + s
