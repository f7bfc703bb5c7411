"""DUS unimodal sampling: actions <-> per-modality sample quantities n_j, and DUS-H.

``fixed`` budget (default): Σ_j n_j = M·B for every action, so a policy redistributes
samples and never buys extra compute; n_j = round(softmax(τ·a)_j·M·B), projected onto
[n_min, n_max] with the sum kept. ``free``: each n_j = n_min + (a_j+1)/2·(n_max − n_min).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BUDGET_MODES = ("fixed", "free")


@dataclass(frozen=True)
class QuantityMap:
    """Maps an action in [−1, 1]^M to integer sample quantities (and back)."""

    num_modalities: int
    batch_size: int
    n_min: int
    n_max: int
    mode: str = "fixed"
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if self.mode not in BUDGET_MODES:
            raise ValueError(f"budget mode must be 'fixed' or 'free', got {self.mode!r}")
        if not 0 <= self.n_min <= self.batch_size <= self.n_max:
            raise ValueError(
                f"need 0 <= n_min <= batch_size <= n_max, got n_min={self.n_min}, "
                f"batch_size={self.batch_size}, n_max={self.n_max}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")

    @property
    def total(self) -> int:
        """M·B: the fixed budget's sum of the n_j."""
        return self.num_modalities * self.batch_size

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the action (one entry per modality)."""
        return (self.num_modalities,)

    @property
    def neutral(self) -> np.ndarray:
        """The action before any is taken (the observation's first ``prev_action``): all zeros,
        i.e. n_j = B for every modality under the fixed budget."""
        return np.zeros(self.num_modalities, np.float32)

    def quantities(self, action: np.ndarray) -> list[int]:
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if self.mode == "free":
            return [int(round(self.n_min + (x + 1) / 2 * (self.n_max - self.n_min))) for x in a]
        w = np.exp(self.temperature * (a - a.max()))
        return project_budget(w / w.sum() * self.total, self.total, self.n_min, self.n_max)

    def action(self, quantities: np.ndarray) -> np.ndarray:
        """An action that maps (up to rounding and clipping to [−1, 1]) to ``quantities``."""
        n = np.asarray(quantities, dtype=np.float64)
        if self.mode == "free":
            a = 2 * (n - self.n_min) / max(self.n_max - self.n_min, 1) - 1
        else:
            a = np.log(np.maximum(n, 1e-3) / self.total) / self.temperature
            a -= a.mean()
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def project_budget(target: np.ndarray, total: int, lo: int, hi: int) -> list[int]:
    """Integers n_j in [lo, hi], summing to ``total``, as close as possible to ``target``.

    Clip, then spread the surplus/deficit over the entries not at a bound (proportionally
    to their share), repeat; finally round by largest remainders within the bounds.
    """
    m = len(target)
    if not m * lo <= total <= m * hi:
        raise ValueError(f"budget {total} is infeasible for {m} modalities in [{lo}, {hi}]")
    return round_to_budget(spread_to_budget(np.asarray(target, dtype=np.float64), total, lo, hi), total, lo, hi)


def spread_to_budget(target: np.ndarray, total: int, lo: int, hi: int) -> np.ndarray:
    """``target`` clipped to [lo, hi], the gap to ``total`` spread over the entries not at a bound."""
    n = np.clip(target, lo, hi)
    for _ in range(len(target) + 1):
        gap = total - n.sum()
        free = (n < hi) if gap > 0 else (n > lo)
        if abs(gap) < 1e-9 or not free.any():
            break
        share = np.where(free, np.maximum(target, 1e-12), 0.0)
        n = np.clip(n + gap * share / share.sum(), lo, hi)
    return n


def round_to_budget(n: np.ndarray, total: int, lo: int, hi: int) -> list[int]:
    """Integers from ``n`` (summing to ``total`` up to float error) by largest remainders in [lo, hi]."""
    out = np.floor(n + 1e-9).astype(int)
    order = np.argsort(-(n - out), kind="stable")
    for j in order:
        if out.sum() >= total:
            break
        if out[j] < hi:
            out[j] += 1
    for j in order[::-1]:  # only reachable through float error: never exceed the budget
        if out.sum() <= total:
            break
        if out[j] > lo:
            out[j] -= 1
    return [int(x) for x in out]


def dus_heuristic_quantities(d: np.ndarray, qmap: QuantityMap, kappa: float = 20.0, tau: float = 0.02,
                             n_min: int | None = None) -> list[int]:
    """DUS-H (our formulation; docs/design.md, "DUS: choices where the paper is not public"):
    n_j ∝ softmax(−κ·d_j)·M·B, clipped to [n_min, n_max]; dead zone τ.

    The weaker a modality (more negative d_j), the more samples it gets. When every
    |d_j| < τ the modalities are considered balanced and all n_j = B. ``n_min`` (default: the
    map's) may only raise the floor, up to B: a milder boost that never takes more than
    B − n_min samples from any modality (the gated-boost rule's ``share``).
    """
    d = np.asarray(d, dtype=np.float64)
    if np.all(np.abs(d) < tau):
        return [qmap.batch_size] * qmap.num_modalities
    lo = qmap.n_min if n_min is None else min(max(int(n_min), qmap.n_min), qmap.batch_size)
    w = np.exp(-kappa * (d - d.min()))
    return project_budget(w / w.sum() * qmap.total, qmap.total, lo, qmap.n_max)
