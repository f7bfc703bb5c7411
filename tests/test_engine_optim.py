"""The engine's stacked optimizers and StepLR follow ``torch.optim`` run by run.

Run k of a (K, P) parameter tensor, updated with its own gradients, lr and active flag, must
follow ``torch.optim.SGD`` / ``torch.optim.Adam`` (and ``lr_scheduler.StepLR``) on that run's
parameters alone; a run that rests keeps its parameters and optimizer state, as a parameter
``torch.optim`` skips (no gradient) does.
"""

from __future__ import annotations

import pytest
import torch

from mmrl_env.engine.optim import OptimConfig, StackedOptimizer, StackedStepLR
from mmrl_env.learners.base import GroupOptimizer

K, P = 3, 7
# (step, active runs): run 1 rests on steps 2 and 3, run 2 on step 4
ACTIVE = [[True, True, True], [True, True, True], [True, False, True], [True, False, True], [True, True, False]]


def torch_optimizer(param: torch.Tensor, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD([param], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam([param], lr=cfg.lr, weight_decay=cfg.weight_decay)


@pytest.mark.parametrize("cfg", [OptimConfig("sgd", lr=0.1, momentum=0.9, weight_decay=1e-2),
                                 OptimConfig("sgd", lr=0.1, momentum=0.0, weight_decay=0.0),
                                 OptimConfig("adam", lr=0.05, weight_decay=1e-2)], ids=["sgd", "plain-sgd", "adam"])
def test_stacked_optimizer_follows_torch_optim_per_run(cfg: OptimConfig) -> None:
    g = torch.Generator().manual_seed(0)
    init = torch.randn(K, P, generator=g, dtype=torch.float64)
    grads = [torch.randn(K, P, generator=g, dtype=torch.float64) for _ in ACTIVE]
    lrs = torch.tensor([cfg.lr, cfg.lr / 2, cfg.lr * 3], dtype=torch.float64)  # per-run lr
    flat = init.clone()
    opt = StackedOptimizer(flat, cfg)
    for grad, active in zip(grads, ACTIVE, strict=True):
        on = torch.tensor(active)
        opt.step(flat, grad.clone(), lrs, on, all_active=bool(on.all()))  # the fast path when every run steps
    for k in range(K):
        param = init[k].clone().requires_grad_()
        ref = torch_optimizer(param, cfg)
        for group in ref.param_groups:
            group["lr"] = lrs[k].item()
        for grad, active in zip(grads, ACTIVE, strict=True):
            if active[k]:  # a resting run is a parameter torch.optim skips: no gradient
                param.grad = grad[k].clone()
                ref.step()
        torch.testing.assert_close(flat[k], param.detach(), rtol=1e-12, atol=1e-14)
    assert opt.steps.tolist() == [sum(a[k] for a in ACTIVE) for k in range(K)]


def test_a_resting_run_keeps_its_state_exactly() -> None:
    cfg = OptimConfig("sgd", lr=0.1, momentum=0.9, weight_decay=1e-2)
    flat = torch.randn(K, P)
    opt = StackedOptimizer(flat, cfg)
    lr = torch.full((K,), 0.1, dtype=torch.float64)
    opt.step(flat, torch.randn(K, P), lr, torch.ones(K, dtype=torch.bool))
    before, buf = flat.clone(), opt.state["momentum_buffer"].clone()
    opt.step(flat, torch.randn(K, P), lr, torch.tensor([False, True, False]))
    assert torch.equal(flat[[0, 2]], before[[0, 2]]) and not torch.equal(flat[1], before[1])
    assert torch.equal(opt.state["momentum_buffer"][[0, 2]], buf[[0, 2]])


def test_group_optimizer_steps_only_its_columns() -> None:
    """A group covers some parameters' columns; the others stay as torch.optim leaves a parameter
    outside the optimizer (no weight decay either)."""
    cfg = OptimConfig("sgd", lr=0.1, momentum=0.9, weight_decay=1e-2)
    flat = torch.randn(K, P)
    before = flat.clone()
    group = GroupOptimizer(flat, [(0, 2), (5, 7)], cfg)
    group.step(flat, torch.randn(K, P), torch.full((K,), 0.1, dtype=torch.float64), torch.ones(K, dtype=torch.bool))
    assert torch.equal(flat[:, 2:5], before[:, 2:5])
    assert not torch.equal(flat[:, :2], before[:, :2]) and not torch.equal(flat[:, 5:], before[:, 5:])
    with pytest.raises(ValueError, match="at least one parameter"):
        GroupOptimizer(flat, [], cfg)


def test_stacked_step_lr_follows_torch_step_lr_per_run() -> None:
    """Each run decays on its own epochs, to the float StepLR gives."""
    cfg = OptimConfig("sgd", lr=0.05, step_size=2, gamma=0.3)
    schedule = StackedStepLR(2, cfg, torch.device("cpu"))
    ends = [[True, True], [True, False], [True, True], [True, True], [False, False], [True, False]]  # 5 and 3 epochs
    for runs in ends:
        schedule.step(torch.tensor(runs))
    for k in range(2):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
        ref = torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma)
        for runs in ends:
            if runs[k]:
                opt.step()
                ref.step()
        assert schedule.lr[k].item() == ref.get_last_lr()[0]
    assert schedule.lr[0].item() != schedule.lr[1].item()  # the runs really decayed differently
