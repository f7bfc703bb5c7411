"""DUS's cumulative modality discrepancy (CMD), SPEC §3.

Scores live on the training device as tensors: updating them costs no host sync; the env
reads them once per decision step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmrl_env.metrics import true_class_probability, true_class_score


def iteration_score(logits: Tensor, labels: Tensor) -> Tensor:
    """s_t^(j) = (1/n_j) Σ_i y_iᵀ softmax(z_i^(j)): mean probability given to the true class."""
    return true_class_score(logits, labels)


def modality_discrepancy(s_hat: Tensor) -> Tensor:
    """d^(j) = ŝ^(j) − max_k ŝ^(k): 0 for the strongest modality, negative for the others.

    This is *our* definition (the paper's exact combination is not public; SPEC §3); every
    consumer goes through this one function.
    """
    return s_hat - s_hat.max()


class CumulativeDiscrepancy:
    """Running cumulative scores ŝ^(j) and their discrepancies d^(j).

    ``mode="mean"`` (paper): ŝ_t = ((t−1)/t)·ŝ_{t−1} + s_t/t, i.e. the mean of the s_t.
    ``mode="ema"``: ŝ_t = β·ŝ_{t−1} + (1−β)·s_t, which keeps tracking late in a long run.
    Both start at ŝ_1 = s_1. Modalities with an empty batch (n_j = 0) keep their score.

    ``update`` runs every training iteration, so it only keeps the detached logits; the
    scores of all pending iterations are computed in one batched pass when ŝ is read (once
    per env step), with exactly the same recursion.
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
        self._s_hat = torch.zeros(self.num_modalities, device=self.device)
        self.count = [0] * self.num_modalities
        self._pending: list[list[tuple[Tensor, Tensor]]] = [[] for _ in range(self.num_modalities)]

    def update(self, logits: list[Tensor], labels: list[Tensor]) -> None:
        """Queue one iteration's unimodal logits (no computation, no host sync)."""
        for j, (z, y) in enumerate(zip(logits, labels, strict=True)):
            if z.shape[0]:
                self._pending[j].append((z, y))

    def _flush(self) -> None:
        for j, pending in enumerate(self._pending):
            if not pending:
                continue
            sizes = torch.tensor([y.shape[0] for _, y in pending], device=self.device)
            hit = true_class_probability(torch.cat([z for z, _ in pending]), torch.cat([y for _, y in pending]))
            segment = torch.repeat_interleave(torch.arange(len(pending), device=self.device), sizes)
            s = torch.zeros(len(pending), device=self.device).index_add_(0, segment, hit) / sizes
            self._s_hat[j] = self._fold(self._s_hat[j], s, self.count[j])
            self.count[j] += len(pending)
            pending.clear()

    def _fold(self, prev: Tensor, s: Tensor, count: int) -> Tensor:
        """Apply the recursion to the iteration scores ``s`` (in order) after ``count`` earlier ones."""
        if self.mode == "mean":
            return (prev * count + s.sum()) / (count + s.numel())
        beta = self.ema_beta
        if count == 0:  # ŝ_1 = s_1
            prev, s = s[0], s[1:]
        k = s.numel()
        weights = (1 - beta) * beta ** torch.arange(k - 1, -1, -1, device=self.device, dtype=s.dtype)
        return beta**k * prev + (weights * s).sum()

    @property
    def s_hat(self) -> Tensor:
        self._flush()
        return self._s_hat

    @property
    def discrepancy(self) -> Tensor:
        return modality_discrepancy(self.s_hat)

    def state_dict(self) -> dict[str, object]:
        self._flush()
        return {"s_hat": self._s_hat.clone(), "count": list(self.count)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.reset()
        self._s_hat = state["s_hat"].to(self.device)
        self.count = list(state["count"])
