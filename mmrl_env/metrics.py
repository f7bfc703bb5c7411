"""Classification metrics for fused and per-modality predictions (scikit-learn backed)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score
from torch import Tensor


def true_class_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """Per sample, the softmax probability given to the true class: y_iᵀ softmax(z_i), shape (N,).

    The one definition behind DUS's iteration score, OGM-GE's s_m and AUG's confidence score.
    """
    return logits.float().softmax(dim=1).gather(1, labels[:, None]).squeeze(1)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean().item())


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes present in ``labels`` of the average precision of softmax scores.

    One macro-averaged sklearn call over the one-hot labels (per-class calls cost more in
    sklearn's argument checks than in the computation).
    """
    present = np.unique(labels)
    if present.size == 0:
        return float("nan")
    onehot = labels[:, None] == present[None, :]
    return float(average_precision_score(onehot, scores[:, present], average="macro"))


def classification_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """accuracy, macro-F1 and mAP of one set of logits."""
    k = logits.shape[1]
    y = labels.cpu().numpy()
    probs = torch.softmax(logits.float(), 1).cpu().numpy()
    pred = probs.argmax(1)
    return {
        "acc": float((pred == y).mean()),
        "f1": float(f1_score(y, pred, average="macro", labels=np.arange(k), zero_division=0)),
        "map": mean_average_precision(probs, y),
    }


def prediction_metrics(fused: Tensor, unimodal: list[Tensor], labels: Tensor,
                       modalities: tuple[str, ...] | list[str]) -> dict[str, float]:
    """The report every CLI and env shows: ``fused_<metric>`` and ``<modality>_<metric>``."""
    out = {f"fused_{k}": v for k, v in classification_metrics(fused, labels).items()}
    for name, z in zip(modalities, unimodal, strict=True):
        out.update({f"{name}_{k}": v for k, v in classification_metrics(z, labels).items()})
    return out


def validation_scores(fused: Tensor, unimodal: list[Tensor], labels: Tensor, modalities: tuple[str, ...] | list[str],
                      extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The cheap per-step scores of K runs at once (env reward, per-epoch logs), each a (K,)
    array from (K, N, C) logits: ``acc`` and ``acc_<modality>``, plus ``f1`` (macro-F1) and/or
    ``loss`` (cross-entropy) of the fused logits when asked. ``labels``: (K, N), row k run k's
    (as :meth:`~mmrl_env.inner_run.run.InnerRun.predict` returns them)."""
    if labels.dim() != 2:
        raise ValueError(f"labels must be (runs, samples), one row per run; got shape {tuple(labels.shape)}")

    def acc(z: Tensor) -> np.ndarray:
        return (z.argmax(-1) == labels).float().mean(-1).cpu().numpy().astype(np.float64)

    out = {"acc": acc(fused)}
    out.update({f"acc_{n}": acc(z) for n, z in zip(modalities, unimodal, strict=True)})
    if "f1" in extra:
        out["f1"] = np.array([classification_metrics(z, labels[k])["f1"] for k, z in enumerate(fused)])
    if "loss" in extra:
        k, n = fused.shape[:2]
        ce = torch.nn.functional.cross_entropy(fused.flatten(0, 1).float(), labels.flatten(), reduction="none")
        out["loss"] = ce.view(k, n).mean(-1).cpu().numpy().astype(np.float64)
    return out
