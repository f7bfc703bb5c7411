"""Optimizers and the LR schedule on stacked parameters (leading run axis K).

Each run keeps its own optimizer state and learning rate; one update serves all K runs with
batched tensor ops (one loop over the model's parameter *tensors*, never over runs). The
formulas are ``torch.optim.SGD`` (momentum, weight decay, dampening 0, no Nesterov) and
``torch.optim.Adam`` (L2 weight decay, no AMSGrad), so run k follows the single learner's
``make_optimizer``. A per-run ``active`` flag gates the whole update: a run that did not step
keeps its parameters *and* its momentum/moments (weight decay would otherwise move it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmrl_env.learners.base import OptimConfig

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which make_optimizer uses


def _per_run(x: Tensor, like: Tensor) -> Tensor:
    """A (K,) tensor shaped to broadcast over a stacked (K, ...) tensor."""
    return x.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


class StackedOptimizer:
    """SGD or Adam over a dict of stacked parameters; per-run state, per-run lr and step count."""

    def __init__(self, params: dict[str, Tensor], cfg: OptimConfig) -> None:
        if cfg.name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {cfg.name!r}; use 'sgd' or 'adam'")
        self.cfg = cfg
        first = next(iter(params.values()))
        self.num_runs, self.device = first.shape[0], first.device
        self.state: dict[str, dict[str, Tensor]] = {}
        for name, p in params.items():
            if cfg.name == "sgd":
                self.state[name] = {"momentum_buffer": torch.zeros_like(p)}
            else:
                self.state[name] = {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        self.steps = torch.zeros(self.num_runs, dtype=torch.long, device=self.device)

    def reset_runs(self, runs: Tensor) -> None:
        """Fresh optimizer state for the runs ``runs`` (a new inner run starts in those slots)."""
        for state in self.state.values():
            for buf in state.values():
                buf[runs] = 0
        self.steps[runs] = 0

    @torch.no_grad()
    def step(self, params: dict[str, Tensor], grads: dict[str, Tensor], lr: Tensor, active: Tensor) -> None:
        """Update ``params`` in place for the runs where ``active`` (K,) is true; ``lr`` is (K,)."""
        self.steps += active.long()
        if self.cfg.name == "sgd":
            self._sgd(params, grads, lr, active)
        else:
            self._adam(params, grads, lr, active)

    def _sgd(self, params: dict[str, Tensor], grads: dict[str, Tensor], lr: Tensor, active: Tensor) -> None:
        cfg = self.cfg
        on = active.to(lr.dtype)
        keep = torch.where(active, torch.full_like(lr, cfg.momentum), torch.ones_like(lr))  # inactive: buf * 1
        step = lr * on  # inactive: p - 0 * buf = p exactly
        for name, p in params.items():
            g = grads[name]
            if cfg.weight_decay:
                g = g.add(p, alpha=cfg.weight_decay)
            if cfg.momentum:
                buf = self.state[name]["momentum_buffer"]
                buf.mul_(_per_run(keep, buf)).add_(g * _per_run(on, g))
                g = buf
            p.sub_(_per_run(step, p) * g)

    def _adam(self, params: dict[str, Tensor], grads: dict[str, Tensor], lr: Tensor, active: Tensor) -> None:
        cfg = self.cfg
        beta1, beta2 = ADAM_BETAS
        t = self.steps.clamp(min=1).to(torch.float64)
        bc1, bc2_sqrt = 1 - beta1 ** t, (1 - beta2 ** t).sqrt()
        step = torch.where(active, lr / bc1, torch.zeros_like(lr))
        for name, p in params.items():
            g = grads[name]
            if cfg.weight_decay:
                g = g.add(p, alpha=cfg.weight_decay)
            state = self.state[name]
            a = _per_run(active, p).bool()
            m = torch.where(a, state["exp_avg"].lerp(g, 1 - beta1), state["exp_avg"])
            v = torch.where(a, state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g, state["exp_avg_sq"])
            state["exp_avg"].copy_(m)
            state["exp_avg_sq"].copy_(v)
            denom = v.sqrt() / _per_run(bc2_sqrt, v) + ADAM_EPS
            p.sub_(_per_run(step, p) * m / denom)

    def state_dict(self) -> dict[str, Any]:
        return {"state": {n: {k: v.clone() for k, v in s.items()} for n, s in self.state.items()},
                "steps": self.steps.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, bufs in state["state"].items():
            for key, value in bufs.items():
                self.state[name][key].copy_(value)
        self.steps.copy_(state["steps"])


class StackedStepLR:
    """``StepLR`` per run: run k's lr is multiplied by γ every ``step_size`` of *its own* epochs.

    Kept as float64, multiplied in the same order as ``torch.optim.lr_scheduler.StepLR``
    (chained), so run k's lr is the single run's Python float.
    """

    def __init__(self, num_runs: int, cfg: OptimConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.lr = torch.full((num_runs,), cfg.lr, dtype=torch.float64, device=device)
        self.epochs = torch.zeros(num_runs, dtype=torch.long, device=device)

    def reset_runs(self, runs: Tensor) -> None:
        self.lr[runs] = self.cfg.lr
        self.epochs[runs] = 0

    def step(self, runs: Tensor) -> None:
        """An epoch ended for the runs where ``runs`` (K,) bool is true."""
        self.epochs += runs.long()
        decay = runs & (self.epochs % self.cfg.step_size == 0)
        self.lr = torch.where(decay, self.lr * self.cfg.gamma, self.lr)

    def state_dict(self) -> dict[str, Tensor]:
        return {"lr": self.lr.clone(), "epochs": self.epochs.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.lr, self.epochs = state["lr"].clone(), state["epochs"].clone()
