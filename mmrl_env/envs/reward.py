"""The reward: the gain of a validation score between two decision steps, for K runs at once.

Two more definitions score the validation curve itself rather than its steps (chosen by an
agent's user, never by default): ``final`` pays the last step's accuracy only, so every
step's undiscounted return is the run's final accuracy (a constant baseline such as
REINFORCE's rollout mean then fits every step alike); ``auc`` pays each step's accuracy,
so the undiscounted return is the area under the validation curve (early accuracy counts).

Measured on a fixed validation subset (the first ``val_size`` samples of the validation
split, the same for every step, episode and run), so the reward's noise comes from the
inner model only, not from which samples were drawn; one batched prediction scores every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmrl_env.metrics import validation_scores

REWARDS = ("acc", "f1", "loss", "final", "auc")


class ValidationReward:
    """``acc``: 100·Δ accuracy (default); ``f1``: 100·Δ macro-F1; ``loss``: −Δ val loss;
    ``final``: 100·accuracy at the run's last step, 0 before; ``auc``: 100·accuracy each step."""

    def __init__(self, kind: str, val_size: int | None, inner_run: Any) -> None:
        self.check(kind, val_size)
        self.kind = kind
        n_val = len(inner_run.dataset.val)
        self.idx = torch.arange(min(val_size or n_val, n_val))  # host: the split moves it (no GPU wait)

    @staticmethod
    def check(kind: str, val_size: int | None) -> None:
        """Refuse bad settings before any data is loaded."""
        if kind not in REWARDS:
            raise ValueError(f"unknown reward {kind!r}; choose one of {', '.join(REWARDS)}")
        if val_size is not None and val_size < 1:
            raise ValueError(f"val_size must be a positive number of samples or None (all), got {val_size}")

    def measure(self, inner_run: Any) -> dict[str, np.ndarray]:
        """Per run (K,): fused and per-modality accuracy (``acc``, ``acc_<modality>``) plus the
        reward's own score when it is not accuracy; one batched prediction for every run."""
        pred, y = inner_run.predict(inner_run.dataset.val, self.idx)
        extra = (self.kind,) if self.kind in ("f1", "loss") else ()
        return validation_scores(pred.fused, pred.unimodal, y, inner_run.dataset.modality_names, extra)

    def gain(self, prev: dict[str, np.ndarray], cur: dict[str, np.ndarray], finished: np.ndarray) -> np.ndarray:
        """(K,) rewards; ``finished`` (K,) bool marks the runs whose last step this was (``final`` pays those)."""
        if self.kind == "final":
            return np.where(finished, 100.0 * cur["acc"], 0.0)
        if self.kind == "auc":
            return 100.0 * cur["acc"]
        if self.kind == "loss":
            return prev["loss"] - cur["loss"]
        return 100.0 * (cur[self.kind] - prev[self.kind])
