"""Initial weights and data order can be seeded apart (``InnerRun.reset(order_seeds=...)``),
which bench/seed_noise.py uses to split the seed-to-seed spread into its sources."""

from __future__ import annotations

import pytest
import torch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig


def trainer(k: int) -> InnerRun:
    data = load_synthetic(n_train=256, n_val=64, n_test=64)
    return InnerRun(data, InnerRunConfig(batch_size=32, epochs=1), k, "cpu")


def first_window(t: InnerRun, run: int) -> torch.Tensor:
    return t.streams[run].next_window(32, 32)


def test_order_seed_varies_the_order_only() -> None:
    t = trainer(4)
    # runs 0, 1: same init seed, other order seeds; runs 2, 3: other init seeds, run 0's order seed
    t.reset([1, 1, 2, 3], order_seeds=[10, 11, 10, 10])
    params = t.learner.stack.flat
    assert torch.equal(params[0], params[1]) and not torch.equal(params[0], params[2])
    windows = [first_window(t, k) for k in range(4)]
    assert not torch.equal(windows[0], windows[1])
    assert torch.equal(windows[0], windows[2]) and torch.equal(windows[0], windows[3])


def test_without_order_seeds_the_seed_drives_both_and_slots_reset_alone() -> None:
    a, b = trainer(2), trainer(2)
    a.reset([5, 6])
    b.reset([5, 6], order_seeds=[50, 60])
    assert torch.equal(a.learner.stack.flat, b.learner.stack.flat)  # init: from the seed either way
    assert not torch.equal(first_window(a, 0), first_window(b, 0))
    b.reset([5], runs=[1], order_seeds=[50])  # a later reset of one slot takes its own order seed
    assert torch.equal(first_window(b, 1), first_window(_fresh(5, 50), 0))
    with pytest.raises(ValueError, match="order_seeds"):
        b.reset([1, 2], order_seeds=[3])


def _fresh(seed: int, order: int) -> InnerRun:
    t = trainer(1)
    t.reset([seed], order_seeds=[order])
    return t
