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

import gymnasium as gym
import numpy as np
from gymnasium.vector import VectorEnv

Infos = list[dict[str, Any]]


class PerRunVectorEnv(VectorEnv):
    """A ``VectorEnv`` whose ``reset``/``step`` are ``reset_runs``/``step_runs`` over all runs."""

    single_observation_space: gym.spaces.Box
    single_action_space: gym.spaces.Box

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

    def check_open(self, call: str) -> None:
        """After ``close()`` the engine, models and actors are released: a ``reset``/``step`` would run
        on what is left of them, so it is refused."""
        if self.closed:
            raise RuntimeError(f"{call}() on a closed env: close() released it; make a new env with gymnasium.make "
                               "/ make_vec")

    def _reset_args(self, seed: int | Sequence[int | None] | None,
                    runs: Sequence[int] | None) -> tuple[list[int], list[int | None]]:
        """``reset_runs``' arguments checked: the run indices (default: all) and one seed per run
        (an int ``s`` gives the j-th run ``s + j``; ``None`` keeps each run's generator)."""
        self.check_open("reset")
        runs = list(range(self.num_envs)) if runs is None else list(runs)
        for r in runs:
            if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, np.integer)) or not 0 <= r < self.num_envs:
                raise IndexError(f"run {r!r} out of range: this env has runs 0..{self.num_envs - 1}")
        if seed is None or isinstance(seed, (int, np.integer)):
            seeds = [None if seed is None else int(seed) + j for j in range(len(runs))]
        else:
            seeds = list(seed)
            if len(seeds) != len(runs):
                raise ValueError(f"got {len(seeds)} seeds for {len(runs)} runs; pass one seed per run (or an int)")
        for s in seeds:
            if s is not None and (isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 0):
                raise ValueError(f"seeds must be non-negative integers or None, got {s!r}")
        return [int(r) for r in runs], [None if s is None else int(s) for s in seeds]

    def _step_args(self, actions: Any, active: Any) -> tuple[Sequence[Any], np.ndarray]:
        """``step_runs``' arguments checked: one action per run — a (K, ...) array, or a list or
        tuple of K actions (each left as given: the env converts every action once) — and the
        (K,) bool ``active`` mask (default: all)."""
        self.check_open("step")
        if not isinstance(actions, (list, tuple)):
            actions = np.asarray(actions)
        shape = actions.shape if isinstance(actions, np.ndarray) else (len(actions),)
        if shape[:1] != (self.num_envs,):
            raise ValueError(f"actions must hold one action per run: shape ({self.num_envs}, "
                             f"{', '.join(map(str, self.single_action_space.shape))}), got {shape}")
        active = np.ones(self.num_envs, bool) if active is None else np.asarray(active)
        if active.shape != (self.num_envs,) or active.dtype != bool:
            raise ValueError(f"active must be a bool mask with one entry per run, shape ({self.num_envs},); "
                             f"got {active.dtype} of shape {active.shape}")
        return actions, active

    def _merge(self, infos: Infos) -> dict[str, Any]:
        """Gymnasium's vector info: one array per key with a ``_key`` mask of the runs that have it."""
        merged: dict[str, Any] = {}
        for k, info in enumerate(infos):
            if info:
                merged = self._add_info(merged, info, k)
        return merged
