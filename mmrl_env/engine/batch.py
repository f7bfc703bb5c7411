"""What one step of K runs consumes and returns: the batch, the step output, the prediction.

Runs that differ in batch composition share one step through per-sample masks over a common
window of N rows: run k's modality j trains on the first n_kj rows of run k's window
(``masks[k, j, :n_kj] = 1``), its fusion loss on the first n_common_k = min_j n_kj rows, so
the first n_common_k rows are the same samples in every modality (DUS unimodal sampling;
docs/design.md, "DUS: choices where the paper is not public"). With equal n_kj this is an ordinary
multimodal batch. Rows past a run's sizes are padding; a run with all sizes 0 does not step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def prefix_masks(sizes: Tensor, n: int) -> Tensor:
    """(K, M) sample counts -> (K, M, n) float masks that select each count's first rows."""
    rows = torch.arange(n, device=sizes.device)
    return (rows < sizes.unsqueeze(-1)).float()


@dataclass
class VectorBatch:
    """K windows of N train indices (padding included), their inputs, labels and masks."""

    windows: Tensor  # (K, N) train-split indices
    inputs: list[Tensor]  # per modality (K, N, ...)
    labels: Tensor  # (K, N); every modality's labels are a prefix of its run's window
    sizes: Tensor  # (K, M) long: n_kj
    masks: Tensor  # (K, M, N) float prefix masks of ``sizes``
    batch_size: int  # reference batch size B: per-modality losses are normalised by it
    host_sizes: Tensor | None = None  # ``sizes`` on the CPU (the trainer passes them: no device sync)

    def _host_sizes(self) -> Tensor:
        return self.sizes.cpu() if self.host_sizes is None else self.host_sizes

    def row_limits(self) -> tuple[list[int], int]:
        """Rows any run uses, per modality (N_j = max_k n_kj) and for the fusion loss
        (N_c = max_k min_j n_kj), as host ints: rows past them are padding in every run."""
        sizes = self._host_sizes()
        if sizes.numel() == 0:
            return [0] * sizes.shape[1], 0
        return sizes.amax(0).tolist(), int(sizes.amin(1).max())

    def host_active(self) -> Tensor:
        """``active`` on the CPU (from the host sizes: no device sync)."""
        return self._host_sizes().amax(1) > 0

    def host_n_common(self) -> Tensor:
        """``n_common`` on the CPU (from the host sizes: no device sync)."""
        return self._host_sizes().amin(1)

    def all_active(self) -> bool:
        """Whether every run steps (host value: lets the optimizer skip its per-run gating)."""
        return bool(self.host_active().all())

    @property
    def n_common(self) -> Tensor:
        """(K,) rows that count for every modality (the fusion loss's rows)."""
        return self.sizes.min(dim=1).values

    @property
    def active(self) -> Tensor:
        """(K,) runs that train on at least one row."""
        return self.sizes.amax(dim=1) > 0

    def run_labels(self, run: int, modality: int) -> Tensor:
        """Run ``run``'s labels for ``modality``: the first n_kj of its window's labels."""
        return self.labels[run, : int(self.sizes[run, modality])]


@dataclass
class VectorStepOutput:
    loss: Tensor  # (K,) detached; 0 for runs that did not step
    unimodal_logits: list[Tensor]  # per modality (K, N, C) detached; rows past n_kj are padding
    active: Tensor  # (K,) bool: runs that stepped


@dataclass
class VectorPrediction:
    fused: Tensor  # (K, N, C) logits of the learner's inference rule
    unimodal: list[Tensor]  # per modality (K, N, C)
    multi: Tensor | None = None  # (K, N, C) the fusion head's own logits
