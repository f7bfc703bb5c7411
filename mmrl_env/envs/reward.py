"""The reward: the gain of a validation score between two decision steps, for K runs at once.

Measured on a fixed validation subset (the first ``val_size`` samples of the validation
split, the same for every step, episode and run), so the reward's noise comes from the
inner model only, not from which samples were drawn; one batched prediction scores every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mmrl_env.metrics import validation_scores

REWARDS = ("acc", "f1", "loss")


class ValidationReward:
    """``acc``: 100·Δ accuracy (default); ``f1``: 100·Δ macro-F1; ``loss``: −Δ val loss."""

    def __init__(self, kind: str, val_size: int | None, trainer: Any) -> None:
        self.check(kind, val_size)
        self.kind = kind
        n_val = len(trainer.dataset.val)
        self.idx = torch.arange(min(val_size or n_val, n_val), device=trainer.device)

    @staticmethod
    def check(kind: str, val_size: int | None) -> None:
        """Refuse bad settings before any data is loaded."""
        if kind not in REWARDS:
            raise ValueError(f"unknown reward {kind!r}; choose one of {', '.join(REWARDS)}")
        if val_size is not None and val_size < 1:
            raise ValueError(f"val_size must be a positive number of samples or None (all), got {val_size}")

    def measure(self, trainer: Any) -> dict[str, np.ndarray]:
        """Per run (K,): fused and per-modality accuracy (``acc``, ``acc_<modality>``) plus the
        reward's own score when it is not accuracy; one batched prediction for every run."""
        pred, y = trainer.predict(trainer.dataset.val, self.idx)
        extra = () if self.kind == "acc" else (self.kind,)
        return validation_scores(pred.fused, pred.unimodal, y, trainer.dataset.modality_names, extra)

    def gain(self, prev: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) rewards."""
        if self.kind == "loss":
            return prev["loss"] - cur["loss"]
        return 100.0 * (cur[self.kind] - prev[self.kind])
