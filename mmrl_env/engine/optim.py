"""Optimizers and the LR schedule on stacked parameters (leading run axis K).

Each run keeps its own optimizer state and learning rate; one update serves all K runs with a
handful of batched ops on the flat (K, P) parameter tensor (no loop over runs or parameters). The
formulas are ``torch.optim.SGD`` (momentum, weight decay, dampening 0, no Nesterov) and
``torch.optim.Adam`` (L2 weight decay, no AMSGrad, default betas and eps), so run k follows
those optimizers step for step. A per-run ``active`` flag gates the whole update: a run that did not step
keeps its parameters *and* its momentum/moments (weight decay would otherwise move it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


@dataclass
class OptimConfig:
    """Inner optimisation. Defaults follow the audio-video reference (BSS paper §4.1, AUG paper §5.2.2)."""

    name: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 1e-4
    step_size: int = 70  # StepLR period, in epochs
    gamma: float = 0.1

    NAMES: ClassVar[tuple[str, ...]] = ("sgd", "adam")

    def __post_init__(self) -> None:
        """Refuse a setting no run could use, here, so ``gym.make`` and the CLIs refuse it alike
        (and before any run directory or first reset)."""
        if self.name not in self.NAMES:
            raise ValueError(f"optim.name={self.name!r}: unknown optimizer; choose one of {', '.join(self.NAMES)}")
        for key, low, high, low_open in (("lr", 0.0, math.inf, True), ("momentum", 0.0, 1.0, False),
                                         ("weight_decay", 0.0, math.inf, False), ("gamma", 0.0, 1.0, True)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"optim.{key}={value!r}: expected a finite number")
            if value < low or (low_open and value == low) or value > high:
                interval = f"{'(' if low_open else '['}{low:g}, {high:g}]".replace("inf]", "inf)")
                raise ValueError(f"optim.{key}={value!r}: must be in {interval}")
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, int) or self.step_size < 1:
            raise ValueError(f"optim.step_size={self.step_size!r}: expected a positive number of epochs")



class StackedOptimizer:
    """SGD or Adam over stacked flat parameters (K, P): per-run state, lr and step count."""

    def __init__(self, params: Tensor, cfg: OptimConfig) -> None:
        if cfg.name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {cfg.name!r}; use 'sgd' or 'adam'")
        self.cfg = cfg
        keys = ("momentum_buffer",) if cfg.name == "sgd" else ("exp_avg", "exp_avg_sq")
        self.state: dict[str, Tensor] = {k: torch.zeros_like(params) for k in keys}
        self.steps = torch.zeros(params.shape[0], dtype=torch.long, device=params.device)

    def reset_runs(self, runs: Tensor) -> None:
        """Fresh optimizer state for the runs ``runs`` (a new inner run starts in those slots)."""
        for buf in self.state.values():
            buf[runs] = 0
        self.steps[runs] = 0

    @torch.no_grad()
    def step(self, params: Tensor, grads: Tensor, lr: Tensor, active: Tensor, all_active: bool = False) -> None:
        """Update ``params`` (K, P) in place for the runs where ``active`` (K,) is true; ``lr`` is (K,).

        ``all_active`` (a host bool: every run steps) takes a path without per-run gating:
        three fused passes over (K, P) for SGD with momentum. ``grads`` may be overwritten."""
        self.steps += active.long()
        if self.cfg.name == "sgd" and all_active:
            self._sgd_all(params, grads, lr)
            return
        on = active.to(params.dtype).unsqueeze(1)
        g = grads.add(params, alpha=self.cfg.weight_decay) if self.cfg.weight_decay else grads
        if self.cfg.name == "sgd":
            self._sgd(params, g, lr.to(params.dtype).unsqueeze(1), on)
        else:
            self._adam(params, g, lr, active)

    def _sgd_all(self, params: Tensor, g: Tensor, lr: Tensor) -> None:
        """``torch.optim.SGD``'s update for every run, in place (the same float operations)."""
        if self.cfg.weight_decay:
            g.add_(params, alpha=self.cfg.weight_decay)
        if self.cfg.momentum:
            buf = self.state["momentum_buffer"]
            torch.add(g, buf, alpha=self.cfg.momentum, out=buf)  # buf·μ + g
            g = buf
        params.addcmul_(g, lr.neg().to(params.dtype).unsqueeze(1))  # p + (−lr)·g

    def _sgd(self, params: Tensor, g: Tensor, lr: Tensor, on: Tensor) -> None:
        if self.cfg.momentum:
            buf = self.state["momentum_buffer"]
            # an inactive run keeps buf * 1 + 0; μ in the parameters' dtype (a Python scalar here would
            # give the default dtype, rounding μ to float32 for float64 parameters)
            keep = torch.where(on > 0, on.new_tensor(self.cfg.momentum), on.new_tensor(1.0))
            buf.mul_(keep).add_(g * on)
            g = buf
        params.sub_((lr * on) * g)  # an inactive run: p - 0 * buf = p exactly

    def _adam(self, params: Tensor, g: Tensor, lr: Tensor, active: Tensor) -> None:
        beta1, beta2 = ADAM_BETAS
        t = self.steps.clamp(min=1).to(torch.float64)
        step = torch.where(active, lr / (1 - beta1 ** t), torch.zeros_like(lr)).to(params.dtype).unsqueeze(1)
        bc2_sqrt = (1 - beta2 ** t).sqrt().to(params.dtype).unsqueeze(1)
        a = active.unsqueeze(1)
        m = torch.where(a, self.state["exp_avg"].lerp(g, 1 - beta1), self.state["exp_avg"])
        v = torch.where(a, self.state["exp_avg_sq"] * beta2 + (1 - beta2) * g * g, self.state["exp_avg_sq"])
        self.state["exp_avg"].copy_(m)
        self.state["exp_avg_sq"].copy_(v)
        params.sub_(step * m / (v.sqrt() / bc2_sqrt + ADAM_EPS))

    def state_dict(self) -> dict[str, Any]:
        return {"state": {k: v.clone() for k, v in self.state.items()}, "steps": self.steps.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state["state"].items():
            self.state[key].copy_(value)
        self.steps.copy_(state["steps"])


class StackedStepLR:
    """``StepLR`` per run: run k's lr is multiplied by γ every ``step_size`` of *its own* epochs.

    Kept as float64, multiplied in the same order as ``torch.optim.lr_scheduler.StepLR``
    (chained), so run k's lr is the float ``torch.optim.lr_scheduler.StepLR`` would give.
    """

    def __init__(self, num_runs: int, cfg: OptimConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.lr = torch.full((num_runs,), cfg.lr, dtype=torch.float64, device=device)
        self.epochs = torch.zeros(num_runs, dtype=torch.long, device=device)

    def reset_runs(self, runs: Tensor) -> None:
        self.lr[runs] = self.cfg.lr
        self.epochs[runs] = 0

    def step(self, runs: Tensor) -> None:
        """An epoch ended for the runs where ``runs`` (K,) bool is true (any device)."""
        runs = runs.to(self.lr.device)
        self.epochs += runs.long()
        decay = runs & (self.epochs % self.cfg.step_size == 0)
        self.lr = torch.where(decay, self.lr * self.cfg.gamma, self.lr)

    def state_dict(self) -> dict[str, Tensor]:
        return {"lr": self.lr.clone(), "epochs": self.epochs.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.lr, self.epochs = state["lr"].clone(), state["epochs"].clone()
