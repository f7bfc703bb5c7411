"""The per-run vector-env API shared by the in-process and the Ray vector envs.

Both envs are written in terms of ``reset_runs(seed, runs)`` and ``step_runs(actions, active)``,
which return one info dict per run (what the rollout and the SB3 adapter use); Gymnasium's
``reset``/``step`` are those calls over every run with the infos merged into Gymnasium's
vector-info format. Kept here once so both envs answer ``reset``/``step`` the same way.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv

Infos = list[dict[str, Any]]


class PerRunVectorEnv(VectorEnv):
    """A ``VectorEnv`` whose ``reset``/``step`` are ``reset_runs``/``step_runs`` over all runs."""

    @abstractmethod
    def reset_runs(self, seed: int | Sequence[int | None] | None = None,
                   runs: Sequence[int] | None = None) -> tuple[np.ndarray, Infos]: ...

    @abstractmethod
    def step_runs(self, actions: np.ndarray, active: np.ndarray | None = None) -> tuple[Any, ...]: ...

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        """Start every run. ``seed``: an int seeds run k with ``seed + k`` (Gymnasium's
        convention), a list gives one seed per run, ``None`` keeps each run's generator
        (fresh entropy the first time)."""
        obs, infos = self.reset_runs(seed=seed)
        return obs, self._merge(infos)

    def step(self, actions: np.ndarray):
        obs, rewards, terminated, truncated, infos = self.step_runs(actions)
        return obs, rewards, terminated, truncated, self._merge(infos)

    def _merge(self, infos: Infos) -> dict[str, Any]:
        """Gymnasium's vector info: one array per key with a ``_key`` mask of the runs that have it."""
        merged: dict[str, Any] = {}
        for k, info in enumerate(infos):
            if info:
                merged = self._add_info(merged, info, k)
        return merged
