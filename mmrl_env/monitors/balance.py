"""BSS's multi-perspective measurer: a per-sample balance score (BSS paper eqs. 4–6; docs/design.md, "BSS: choices").

The maths are pure tensor functions (testable on hand-built logits); :class:`BalanceMeasurer`
runs one batched evaluation pass over the training set and applies them. A high score
means the modalities agree (eq. 4) on a sample the model already fits well (eq. 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn import functional as F

from mmrl_env.engine.batchnorm import batch_statistics

if TYPE_CHECKING:
    from mmrl_env.engine.batch import VectorPrediction
    from mmrl_env.inner_run.run import InnerRun


def prediction_similarity(unimodal: list[Tensor]) -> Tensor:
    """Eq. 4: cosine of the unimodal softmax vectors, per sample; M > 2: mean over modality pairs."""
    if len(unimodal) < 2:
        raise ValueError(f"prediction similarity needs at least two modalities, got {len(unimodal)}")
    probs = F.normalize(torch.stack([z.float().softmax(dim=-1) for z in unimodal]), dim=-1)  # (M, N, K)
    gram = torch.einsum("mnk,lnk->nml", probs, probs)
    rows, cols = torch.triu_indices(len(unimodal), len(unimodal), offset=1, device=gram.device)
    return gram[:, rows, cols].mean(dim=-1)


def sample_loss(multi: Tensor, unimodal: list[Tensor], labels: Tensor, alpha: float = 0.2) -> Tensor:
    """Eq. 5 per sample: (1−α)·CE(z_multi) + α·Σ_j CE(z_j)."""
    uni = torch.stack([F.cross_entropy(z.float(), labels, reduction="none") for z in unimodal]).sum(dim=0)
    return (1 - alpha) * F.cross_entropy(multi.float(), labels, reduction="none") + alpha * uni


def minmax(x: Tensor) -> Tensor:
    """Min-max normalisation to [0, 1] over all entries (a constant vector maps to zeros)."""
    lo, hi = x.aminmax()
    return (x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)


def balance_score(similarity: Tensor, loss: Tensor) -> Tensor:
    """Eq. 6: Norm(sim) − Norm(L_total), in [−1, 1]; Norm over the samples given (the training set)."""
    return minmax(similarity) - minmax(loss)


@dataclass(frozen=True)
class BalanceMeasurement:
    """Per-sample similarity (raw cosine), loss (raw eq. 5) and balance score of one pass."""

    score: Tensor
    similarity: Tensor
    loss: Tensor

    def subset_means(self, idx: Tensor) -> dict[str, float]:
        """Means over the samples ``idx`` (with multiplicity: a sequence drawn with replacement)."""
        idx = idx.to(self.score.device)
        return {name: float(v[idx].mean().item()) for name, v in
                (("score", self.score), ("similarity", self.similarity), ("loss", self.loss))}


def measure_prediction(pred: VectorPrediction, labels: Tensor, run: int, alpha: float = 0.2) -> BalanceMeasurement:
    """Run ``run``'s scores from a K-run prediction; z_multi is the fusion head's logits, or the
    fused logits when the learner has no fusion head (``pred.multi is None``)."""
    multi = pred.fused[run] if pred.multi is None else pred.multi[run]
    unimodal = [z[run] for z in pred.unimodal]
    sim = prediction_similarity(unimodal)
    loss = sample_loss(multi, unimodal, labels, alpha)
    return BalanceMeasurement(balance_score(sim, loss), sim, loss)


MEASURE_MODES = ("eval", "train")


class BalanceMeasurer:
    """Measures the current inner models on the whole training split (one batched pass).

    ``mode``: ``eval`` (default) — BatchNorm with its running statistics, so a sample's score
    depends on the model and that sample alone, not on which samples share its chunk or on the
    data order; ``train`` — as the authors' code (``model_evaluate`` under ``net.train()``):
    BatchNorm on the statistics of chunks of B training samples in dataset order. The two differ
    most for the untrained network BSS-H ranks with (its running statistics are still 0/1).
    ``train`` leaves the running statistics alone (the authors' pass also folds its batches into
    them, a side effect on the model that mmrl does not copy); dropout stays off in both."""

    def __init__(self, alpha: float = 0.2, mode: str = "eval") -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"measurer alpha must lie in [0, 1], got {alpha}")
        if mode not in MEASURE_MODES:
            raise ValueError(f"measurer mode must be one of {MEASURE_MODES}, got {mode!r}")
        self.alpha, self.mode = alpha, mode

    def measure_runs(self, inner_run: InnerRun) -> list[BalanceMeasurement]:
        """One measurement per run of the inner run (K = 1: a list of one), from one batched prediction pass."""
        if self.mode == "train":
            with batch_statistics():
                pred, labels = inner_run.predict(inner_run.dataset.train, chunk_size=inner_run.cfg.batch_size)
        else:
            pred, labels = inner_run.predict(inner_run.dataset.train)
        return [measure_prediction(pred, labels[k], k, self.alpha) for k in range(inner_run.num_runs)]
