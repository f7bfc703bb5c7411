import numpy as np
import pytest
import torch

from mmrl_env.inner_run.stream import ShuffledStream
from mmrl_env.samplers.unimodal import QuantityMap, dus_heuristic_quantities, project_budget


@pytest.mark.parametrize("m", [2, 3])
def test_fixed_budget_holds_for_every_action(m):
    q = QuantityMap(m, 64, n_min=16, n_max=128)
    rng = np.random.default_rng(0)
    actions = np.concatenate([rng.uniform(-1, 1, (2000, m)), rng.choice([-1.0, 1.0], (200, m)), np.zeros((1, m))])
    for a in actions:
        n = q.quantities(a)
        assert sum(n) == m * 64
        assert all(16 <= x <= 128 for x in n)
    assert q.quantities(np.zeros(m)) == [64] * m


def test_free_mode_range():
    q = QuantityMap(2, 64, n_min=8, n_max=128, mode="free")
    assert q.quantities(np.array([-1.0, 1.0])) == [8, 128]
    assert q.quantities(np.array([0.0, 0.0])) == [68, 68]


@pytest.mark.parametrize("mode", ["fixed", "free"])
def test_action_inverts_quantities(mode):
    q = QuantityMap(2, 64, n_min=16, n_max=128, mode=mode)
    for n in ([40, 88], [64, 64], [100, 28]):
        assert q.quantities(q.action(np.array(n))) == pytest.approx(n, abs=1)


def test_project_budget():
    assert project_budget(np.array([10.0, 118.0]), 128, 16, 112) == [16, 112]
    assert sum(project_budget(np.array([1 / 3, 1 / 3, 1 / 3]) * 100, 100, 0, 100)) == 100
    with pytest.raises(ValueError, match="infeasible"):
        project_budget(np.array([1.0, 1.0]), 300, 0, 100)


def test_invalid_quantity_map():
    with pytest.raises(ValueError, match="n_min"):
        QuantityMap(2, 64, n_min=80, n_max=128)


def test_dus_h_gives_weaker_modality_more():
    q = QuantityMap(2, 64, n_min=16, n_max=128)
    n = dus_heuristic_quantities(np.array([0.0, -0.1]), q, kappa=20.0, tau=0.02)
    assert n[1] > 64 > n[0] and sum(n) == 128
    # hand-computed: softmax(−20·d) = softmax([0, 2]) -> video share e²/(1+e²)
    assert n[1] == pytest.approx(128 * np.exp(2) / (1 + np.exp(2)), abs=1)
    n3 = dus_heuristic_quantities(np.array([0.0, -0.3, -0.1]), QuantityMap(3, 64, 16, 128))
    assert n3[1] > n3[2] > n3[0]


def test_dus_h_dead_zone():
    q = QuantityMap(2, 64, n_min=16, n_max=128)
    assert dus_heuristic_quantities(np.array([0.0, -0.01]), q, tau=0.02) == [64, 64]


def test_stream_windows_share_one_order_and_cover_epochs():
    s = ShuffledStream(10, torch.Generator().manual_seed(0))
    a = s.next_window(4, 2)
    b = s.next_window(4, 2)
    assert torch.equal(a[2:], b[:2])  # overlapping windows over one order
    s = ShuffledStream(10, torch.Generator().manual_seed(0))
    first_epoch = torch.cat([s.next_window(5, 5) for _ in range(2)])
    assert sorted(first_epoch.tolist()) == list(range(10))
