"""DUS's cumulative modality discrepancy (CMD), for K inner runs at once.

Per-iteration score (DUS paper): s_t^(j) = (1/n_j) Σ_i y_iᵀ softmax(z_i^(j)) over modality j's
own mini-batch; cumulative score ŝ (running mean, or an EMA); discrepancy d^(j) = ŝ^(j) −
max_k ŝ^(k) (our definition: the paper's exact combination is not public). Scores live on
the training device as (K, M) tensors: updating them costs no host sync; the env reads
them once per decision step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmrl_env.metrics import true_class_probability

CMD_MODES = ("mean", "ema")


def iteration_score(logits: Tensor, labels: Tensor) -> Tensor:
    """s_t^(j) = (1/n_j) Σ_i y_iᵀ softmax(z_i^(j)): mean probability given to the true class (0 for
    n_j = 0). One batch of one run; :class:`CumulativeDiscrepancy` computes the K-run form."""
    if logits.shape[0] == 0:
        return logits.new_zeros(())
    return true_class_probability(logits, labels).mean()


def modality_discrepancy(s_hat: Any) -> Any:
    """d^(j) = ŝ^(j) − max_k ŝ^(k) over the last axis: 0 for the strongest modality, negative
    for the others (tensors or arrays, one run (M,) or K runs (K, M)).

    This is *our* definition (the paper's exact combination is not public); every consumer
    goes through this one function.
    """
    if isinstance(s_hat, Tensor):
        return s_hat - s_hat.amax(dim=-1, keepdim=True)
    return s_hat - s_hat.max(axis=-1, keepdims=True)


def chance_normalised(scores: np.ndarray, classes: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray:
    """(s − 1/C)/(1 − 1/C) per run: a score or accuracy as the fraction of the way from chance
    (0) to certainty (1), so its scale no longer depends on the class count C. ``scores`` (K, M),
    ``classes`` (K,); ``seen`` (K, M) bool marks the scores measured at least once (the others,
    e.g. ŝ before the first iteration, are 0 = chance)."""
    chance = 1.0 / np.asarray(classes, np.float64)[:, None]
    out = (np.asarray(scores, np.float64) - chance) / (1.0 - chance)
    return out if seen is None else np.where(seen, out, 0.0)


class CumulativeDiscrepancy:
    """Running cumulative scores ŝ (K runs × M modalities) and their discrepancies d.

    ``mode="mean"`` (paper): ŝ_t = ((t−1)/t)·ŝ_{t−1} + s_t/t, i.e. the mean of the s_t.
    ``mode="ema"``: ŝ_t = β·ŝ_{t−1} + (1−β)·s_t, which keeps tracking late in a long run.
    Both start at ŝ_1 = s_1. A modality with an empty batch (n_j = 0) in a run keeps its
    score there, and a run that did not step is untouched.

    ``update`` runs every training iteration, so it only computes the (K, M) iteration scores
    (a few batched ops) and queues them; the recursion over all pending iterations runs when
    ŝ is read (once per env step).
    """

    def __init__(self, num_runs: int, num_modalities: int, mode: str = "mean", ema_beta: float = 0.99,
                 device: torch.device | str = "cpu") -> None:
        if mode not in CMD_MODES:
            raise ValueError(f"CMD mode must be 'mean' or 'ema', got {mode!r}")
        if not 0.0 <= ema_beta < 1.0:
            raise ValueError(f"ema_beta must lie in [0, 1), got {ema_beta}")
        self.mode, self.ema_beta = mode, ema_beta
        self.num_runs, self.num_modalities = num_runs, num_modalities
        self.device = torch.device(device)
        self._s_hat = torch.zeros(num_runs, num_modalities, device=self.device)
        self._count = torch.zeros(num_runs, num_modalities, device=self.device)
        self._pending: list[tuple[Tensor, Tensor]] = []

    def reset(self, runs: list[int] | None = None) -> None:
        """Forget the scores of ``runs`` (default: all)."""
        self._flush()
        sel = slice(None) if runs is None else torch.as_tensor(runs, dtype=torch.long, device=self.device)
        self._s_hat[sel] = 0.0
        self._count[sel] = 0.0

    def update(self, logits: list[Tensor], labels: Tensor, masks: Tensor) -> None:
        """Queue one iteration: ``logits[j]`` (K, N, C) of modality j, ``labels`` (K, N) and the
        (K, M, N) masks of the rows each run's modality trained on."""
        hit = torch.stack([true_class_probability(z.flatten(0, 1), labels.flatten()).view(labels.shape)
                           for z in logits], dim=1)  # (K, M, N)
        n = masks.sum(-1)
        self._pending.append(((hit * masks).sum(-1) / n.clamp(min=1), n > 0))

    def _flush(self) -> None:
        if not self._pending:
            return
        s = torch.stack([p[0] for p in self._pending])  # (T, K, M)
        valid = torch.stack([p[1] for p in self._pending])
        self._pending.clear()
        if self.mode == "mean":
            steps = valid.sum(0)
            total = self._s_hat * self._count + (s * valid).sum(0)
            self._count = self._count + steps
            self._s_hat = torch.where(steps > 0, total / self._count.clamp(min=1), self._s_hat)
            return
        beta = self.ema_beta
        for s_t, v_t in zip(s, valid, strict=True):  # T iterations of (K, M) ops; never a loop over runs
            first = v_t & (self._count == 0)  # ŝ_1 = s_1
            ema = beta * self._s_hat + (1 - beta) * s_t
            self._s_hat = torch.where(first, s_t, torch.where(v_t, ema, self._s_hat))
            self._count = self._count + v_t

    @property
    def s_hat(self) -> Tensor:
        """(K, M) cumulative scores."""
        self._flush()
        return self._s_hat

    @property
    def seen(self) -> Tensor:
        """(K, M) bool: the modality has a score (at least one iteration with samples)."""
        self._flush()
        return self._count > 0

    @property
    def discrepancy(self) -> Tensor:
        return modality_discrepancy(self.s_hat)

    def state_dict(self) -> dict[str, Tensor]:
        self._flush()
        return {"s_hat": self._s_hat.clone(), "count": self._count.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self._pending.clear()
        self._s_hat = state["s_hat"].to(self.device).clone()
        self._count = state["count"].to(self.device).clone()
