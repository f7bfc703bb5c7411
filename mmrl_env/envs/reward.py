"""The reward: the gain of a validation score between two decision steps, for K runs at once.

Measured on a fixed validation subset (the first ``val_size`` samples of the validation
split, the same for every step, episode and run), so the reward's noise comes from the
inner model only, not from which samples were drawn; one batched prediction scores every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mmrl_env.metrics import classification_metrics

REWARDS = ("acc", "f1", "loss")


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """(K,) accuracies of (K, N, C) logits."""
    return (logits.argmax(-1) == labels).float().mean(-1).cpu().numpy().astype(np.float64)


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
        reward's own score when it is not accuracy."""
        pred, y = trainer.predict(trainer.dataset.val, self.idx)
        out = {"acc": _accuracy(pred.fused, y)}
        for name, z in zip(trainer.dataset.modality_names, pred.unimodal, strict=True):
            out[f"acc_{name}"] = _accuracy(z, y)
        if self.kind == "f1":
            out["f1"] = np.array([classification_metrics(z, y)["f1"] for z in pred.fused])
        if self.kind == "loss":
            k, n = pred.fused.shape[:2]
            ce = F.cross_entropy(pred.fused.flatten(0, 1).float(), y.repeat(k), reduction="none").view(k, n)
            out["loss"] = ce.mean(-1).cpu().numpy().astype(np.float64)
        return out

    def gain(self, prev: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> np.ndarray:
        """(K,) rewards."""
        if self.kind == "loss":
            return prev["loss"] - cur["loss"]
        return 100.0 * (cur[self.kind] - prev[self.kind])
