"""DUS's cumulative modality discrepancy (CMD), SPEC §3.

Scores live on the training device as tensors: updating them costs no host sync; the env
reads them once per decision step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def iteration_score(logits: Tensor, labels: Tensor) -> Tensor:
    """s_t^(j) = (1/n_j) Σ_i y_iᵀ softmax(z_i^(j)): mean probability given to the true class."""
    if logits.shape[0] == 0:
        return logits.new_zeros(())
    return logits.float().softmax(dim=1).gather(1, labels[:, None]).mean()


def modality_discrepancy(s_hat: Tensor) -> Tensor:
    """d^(j) = ŝ^(j) − max_k ŝ^(k): 0 for the strongest modality, negative for the others.

    This is *our* definition (the paper's exact combination is not public; SPEC §3); every
    consumer goes through this one function.
    """
    return s_hat - s_hat.max()


class CumulativeDiscrepancy:
    """Running cumulative scores ŝ^(j) and their discrepancies d^(j).

    ``mode="mean"`` (paper): ŝ_t = ((t−1)/t)·ŝ_{t−1} + s_t/t, i.e. the mean of the s_t,
    kept as a running sum and divided when read.
    ``mode="ema"``: ŝ_t = β·ŝ_{t−1} + (1−β)·s_t, which keeps tracking late in a long run.
    Both start at ŝ_1 = s_1. Modalities with an empty batch (n_j = 0) keep their score.
    Per-iteration work is a handful of device ops per modality (this runs every iteration);
    counts are host integers, since batch sizes are known on the host.
    """

    def __init__(self, num_modalities: int, mode: str = "mean", ema_beta: float = 0.99,
                 device: torch.device | str = "cpu") -> None:
        if mode not in ("mean", "ema"):
            raise ValueError(f"CMD mode must be 'mean' or 'ema', got {mode!r}")
        if not 0.0 <= ema_beta < 1.0:
            raise ValueError(f"ema_beta must lie in [0, 1), got {ema_beta}")
        self.mode, self.ema_beta, self.num_modalities = mode, ema_beta, num_modalities
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        self._acc = [torch.zeros((), device=self.device) for _ in range(self.num_modalities)]
        self.count = [0] * self.num_modalities

    def update(self, logits: list[Tensor], labels: list[Tensor]) -> None:
        """Fold in one iteration's unimodal logits (no host sync)."""
        for j, (z, y) in enumerate(zip(logits, labels, strict=True)):
            if z.shape[0] == 0:
                continue
            s = iteration_score(z, y)
            if self.mode == "mean":
                self._acc[j] = self._acc[j] + s
            else:
                self._acc[j] = s if self.count[j] == 0 else self.ema_beta * self._acc[j] + (1 - self.ema_beta) * s
            self.count[j] += 1

    @property
    def s_hat(self) -> Tensor:
        acc = torch.stack(self._acc)
        if self.mode == "ema":
            return acc
        return acc / torch.tensor(self.count, device=self.device).clamp(min=1)

    @property
    def discrepancy(self) -> Tensor:
        return modality_discrepancy(self.s_hat)

    def state_dict(self) -> dict[str, object]:
        return {"acc": [a.clone() for a in self._acc], "count": list(self.count)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._acc = [a.to(self.device) for a in state["acc"]]
        self.count = list(state["count"])
