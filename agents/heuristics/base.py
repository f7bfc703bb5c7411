"""Heuristic policies act through the same ``predict(obs)`` call as a trained SB3 agent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from mmrl_env.envs.control import ControlSpec, control_of


class HeuristicPolicy:
    """Base: subclasses implement ``act(obs) -> action`` for one observation.

    ``methods`` lists the env families (``DUS``, ``BSS``) the heuristic understands; an
    empty tuple means any. ``env_kwargs`` are the env settings the heuristic stands for
    (e.g. BSS-L needs the learned curriculum): ``train_agent.py`` makes the heuristic's env
    with them, and a policy refuses an env that contradicts them. ``learn`` is a no-op so a
    heuristic can stand wherever an agent does; ``save`` writes its parameters as JSON.
    """

    name: ClassVar[str] = ""
    methods: ClassVar[tuple[str, ...]] = ()
    env_kwargs: ClassVar[dict[str, Any]] = {}

    def __init__(self, env: gym.Env | ControlSpec, seed: int | None = None, **params: Any) -> None:
        self.control = control_of(env)  # all a heuristic reads of its env: an env, a vector env or its ControlSpec
        self.action_space = gym.spaces.Box(-1.0, 1.0, self.control.action_map.shape, dtype=np.float32)
        self.params = params
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, None]:
        """SB3-style: accepts one observation or a batch (VecEnv) and returns (actions, None)."""
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim == 1:
            return self.act(obs).astype(np.float32), None
        return np.stack([self.act(o) for o in obs]).astype(np.float32), None

    def learn(self, total_timesteps: int = 0, **_: Any) -> HeuristicPolicy:
        return self

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"heuristic": self.name, "params": self.params}, indent=2))
