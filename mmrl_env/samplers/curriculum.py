"""BSS curriculum: pacing functions, the proportion action map, and the two curricula
(the paper's "sequence schedulers"; named curricula here so as not to clash with LR schedulers).

* Heuristic (``rank``, eqs. 7–8): rank the training set by balance score (descending) and
  train each epoch on a random shuffle of the top ⌈λ·n⌉ samples.
* Learning-based (``learned``, eqs. 9–11): smooth the scores over measurements with an EMA,
  p = softmax(ŝ), and draw the epoch's sequence from p. Eq. 11 leaves the draw open; we draw
  ⌈λ·n⌉ samples *with replacement* (i.i.d. from p, so an epoch has the usual length at λ = 1
  and balanced samples may recur). ``sampling="authors"`` is the authors' code instead: weights
  1 + ŝ and a weighted permutation without replacement.

Every draw uses the generator passed in (the trainer's private one), never the global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

PACINGS = ("root", "linear", "baby_step")
CURRICULA = ("rank", "learned")
SAMPLINGS = ("paper", "authors")


@dataclass(frozen=True)
class Pacing:
    """λ(t): the share of the ranked training set available at epoch t (t = 0, 1, ...).

    ``root`` (eq. 7): min(1, sqrt((1−λ0²)/T_grow·t + λ0²)); ``linear``: min(1, λ0 + (1−λ0)·t/T_grow);
    ``baby_step``: λ0 plus (1−λ0)/steps every T_grow/steps epochs. All reach 1 at t = T_grow.
    """

    kind: str = "root"
    lambda0: float = 0.1
    t_grow: float = 40.0
    steps: int = 4

    def __post_init__(self) -> None:
        if self.kind not in PACINGS:
            raise ValueError(f"unknown pacing {self.kind!r}; choose one of {', '.join(PACINGS)}")
        if not 0.0 < self.lambda0 <= 1.0:
            raise ValueError(f"lambda0 must lie in (0, 1], got {self.lambda0}")
        if self.t_grow <= 0 or self.steps < 1:
            raise ValueError(f"need t_grow > 0 and steps >= 1, got t_grow={self.t_grow}, steps={self.steps}")

    def __call__(self, t: float) -> float:
        t, l0 = max(float(t), 0.0), self.lambda0
        if self.kind == "root":
            proportion = math.sqrt((1 - l0**2) / self.t_grow * t + l0**2)
        elif self.kind == "linear":
            proportion = l0 + (1 - l0) * t / self.t_grow
        else:
            proportion = l0 + (1 - l0) * math.floor(self.steps * t / self.t_grow) / self.steps
        return min(1.0, proportion)


@dataclass(frozen=True)
class ProportionMap:
    """The BSS action a ∈ [−1, 1] ↔ λ ∈ [λ_min, 1], linearly (and back, for heuristics)."""

    lambda_min: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.lambda_min <= 1.0:
            raise ValueError(f"lambda_min must lie in (0, 1], got {self.lambda_min}")

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the action (one entry: λ)."""
        return (1,)

    @property
    def neutral(self) -> np.ndarray:
        """The action before any is taken (the observation's first ``prev_action``): λ = 1, the
        whole training set, i.e. plain joint training."""
        return np.ones(1, np.float32)

    def proportion(self, action: np.ndarray | float) -> float:
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        return self.lambda_min + (a + 1) / 2 * (1 - self.lambda_min)

    def action(self, proportion: float) -> np.ndarray:
        """The action giving λ (λ below λ_min maps to −1)."""
        a = 2 * (proportion - self.lambda_min) / max(1 - self.lambda_min, 1e-12) - 1
        return np.clip(np.array([a], np.float32), -1.0, 1.0)


def subset_size(n: int, proportion: float) -> int:
    """⌈λ·n⌉, at least 1 and at most n (rounded first so that e.g. 0.1·400 gives 40, not 41)."""
    return min(n, max(1, math.ceil(round(proportion * n, 6))))


def rank(score: Tensor) -> Tensor:
    """Indices by descending score (stable: ties keep index order, so rankings are reproducible)."""
    return torch.argsort(score, descending=True, stable=True)


def ema_update(s_hat: Tensor | None, score: Tensor, beta: float = 0.6) -> Tensor:
    """Eq. 9: ŝ^1 = s^1; ŝ^{k+1} = (1−β)·ŝ^k + β·s^{k+1}."""
    return score.clone() if s_hat is None else (1 - beta) * s_hat + beta * score


class Curriculum(Protocol):
    """Turns balance measurements into one epoch's index sequence."""

    def update(self, score: Tensor) -> None: ...

    def order(self, proportion: float, generator: torch.Generator) -> Tensor: ...

    def state_dict(self) -> dict[str, Tensor | None]: ...

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None: ...


class RankCurriculum:
    """Heuristic scheduler (eq. 8): a random shuffle of the top-⌈λ·n⌉ ranked samples.

    ``update`` re-ranks with the newest score (the paper ranks once: measure only once).
    """

    def __init__(self) -> None:
        self.ranking: Tensor | None = None

    def update(self, score: Tensor) -> None:
        self.ranking = rank(score.detach().cpu())

    def order(self, proportion: float, generator: torch.Generator) -> Tensor:
        if self.ranking is None:
            raise RuntimeError("no balance score yet: call update() with a measurement first")
        top = self.ranking[: subset_size(len(self.ranking), proportion)]
        return top[torch.randperm(len(top), generator=generator)]

    def state_dict(self) -> dict[str, Tensor | None]:
        return {"ranking": self.ranking}

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        self.ranking = state["ranking"]


class LearnedCurriculum:
    """Learning-based scheduler (eqs. 9–11): EMA of the scores, p = softmax(ŝ), draws from p."""

    def __init__(self, beta: float = 0.6, sampling: str = "paper") -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
        self.beta, self.sampling = beta, sampling
        self.s_hat: Tensor | None = None

    def update(self, score: Tensor) -> None:
        self.s_hat = ema_update(self.s_hat, score.detach().cpu().double(), self.beta)

    @property
    def probabilities(self) -> Tensor:
        """Eq. 10 (paper), or the authors' weights 1 + ŝ normalised (kept > 0 so all can be drawn)."""
        if self.s_hat is None:
            raise RuntimeError("no balance score yet: call update() with a measurement first")
        if self.sampling == "paper":
            return self.s_hat.softmax(dim=0)
        w = (1 + self.s_hat).clamp_min(1e-6)
        return w / w.sum()

    def order(self, proportion: float, generator: torch.Generator) -> Tensor:
        p = self.probabilities
        k = subset_size(len(p), proportion)
        return torch.multinomial(p, k, replacement=self.sampling == "paper", generator=generator)

    def state_dict(self) -> dict[str, Tensor | None]:
        return {"s_hat": self.s_hat}

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        self.s_hat = state["s_hat"]


def make_curriculum(kind: str, beta: float = 0.6, sampling: str = "paper") -> Curriculum:
    if kind == "rank":
        return RankCurriculum()
    if kind == "learned":
        return LearnedCurriculum(beta, sampling)
    raise ValueError(f"unknown curriculum {kind!r}; choose one of {', '.join(CURRICULA)}")
