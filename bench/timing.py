"""Timing shared by the bench scripts (imported as ``timing``: they run as ``python bench/<script>.py``).

On a shared machine a load change would favour whichever side ran while it was quiet, so the
sides of a comparison alternate round by round (:func:`alternate`) and each script reduces the
samples as it reports them (fastest round, or median). GPU work is queued, so a clock read is
only meaningful after :func:`sync`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import gymnasium as gym
import numpy as np
import torch

T = TypeVar("T")


def sync(device: torch.device) -> None:
    """Wait for the queued work of ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(measures: dict[str, Callable[[], T]], repeats: int) -> dict[str, list[T]]:
    """Every measurement once per round, for ``repeats`` rounds; each one's samples, in order."""
    samples: dict[str, list[T]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            samples[name].append(measure())
    return samples


def env_step_timer(env: gym.Env | gym.vector.VectorEnv, steps: int, seed: int) -> Callable[[], float]:
    """Reset ``env`` (a single or a vector env) and warm it up one step; return a function timing
    ``steps`` steps of uniform random actions from ``seed`` (seconds per step; no reset between)."""
    rng = np.random.default_rng(seed)
    vector = isinstance(env, gym.vector.VectorEnv)
    space = env.single_action_space if vector else env.action_space
    shape = (env.num_envs, *space.shape) if vector else space.shape

    def act() -> np.ndarray:
        return rng.uniform(space.low, space.high, shape).astype(np.float32)

    env.reset(seed=seed)
    env.step(act())

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            env.step(act())
        return (time.perf_counter() - start) / steps

    return measure
