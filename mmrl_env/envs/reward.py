"""The reward: the gain of a validation score between two decision steps.

Measured on a fixed validation subset (the first ``val_size`` samples of the validation
split, the same for every step and episode), so the reward's noise comes from the inner
model only, not from which samples were drawn.
"""

from __future__ import annotations

import torch

from mmrl_env.metrics import validation_scores
from mmrl_env.trainer import InnerTrainer

REWARDS = ("acc", "f1", "loss")


class ValidationReward:
    """``acc``: 100·Δ accuracy (default); ``f1``: 100·Δ macro-F1; ``loss``: −Δ val loss."""

    def __init__(self, kind: str, val_size: int | None, trainer: InnerTrainer) -> None:
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

    def measure(self, trainer: InnerTrainer) -> dict[str, float]:
        """Fused and per-modality accuracy (``acc``, ``acc_<modality>``) plus the reward's score."""
        pred, y = trainer.predict(trainer.dataset.val, self.idx)
        extra = () if self.kind == "acc" else (self.kind,)
        return validation_scores(pred.fused, pred.unimodal, y, trainer.dataset.modality_names, extra)

    def gain(self, prev: dict[str, float], cur: dict[str, float]) -> float:
        if self.kind == "loss":
            return prev["loss"] - cur["loss"]
        return 100.0 * (cur[self.kind] - prev[self.kind])
