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

    ``mode="mean"`` (paper): ŝ_t = ((t−1)/t)·ŝ_{t−1} + s_t/t.
    ``mode="ema"``: ŝ_t = β·ŝ_{t−1} + (1−β)·s_t, which keeps tracking late in a long run.
    Both start at ŝ_1 = s_1. Modalities with an empty batch (n_j = 0) keep their score.
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
        self.s_hat = torch.zeros(self.num_modalities, device=self.device)
        self.count = torch.zeros(self.num_modalities, device=self.device)

    def update(self, logits: list[Tensor], labels: list[Tensor]) -> Tensor:
        """Fold in one iteration's unimodal logits; returns this iteration's scores s_t."""
        s = torch.stack([iteration_score(z, y) for z, y in zip(logits, labels, strict=True)])
        seen = torch.tensor([z.shape[0] > 0 for z in logits], device=self.device)
        self.count = self.count + seen
        if self.mode == "mean":
            w = torch.where(seen, 1.0 / self.count.clamp(min=1), torch.zeros_like(self.count))
        else:
            first = self.count == 1
            w = torch.where(first, torch.ones_like(self.count), torch.full_like(self.count, 1 - self.ema_beta))
            w = torch.where(seen, w, torch.zeros_like(w))
        self.s_hat = (1 - w) * self.s_hat + w * s
        return s

    @property
    def discrepancy(self) -> Tensor:
        return modality_discrepancy(self.s_hat)

    def state_dict(self) -> dict[str, Tensor]:
        return {"s_hat": self.s_hat.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.s_hat = state["s_hat"].to(self.device)
        self.count = state["count"].to(self.device)
