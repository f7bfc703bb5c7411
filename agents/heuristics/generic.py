"""Method-agnostic baselines: a constant neutral action, and uniformly random actions."""

from __future__ import annotations

import numpy as np

from mmrl_agents.heuristics.base import HeuristicPolicy


class UniformPolicy(HeuristicPolicy):
    """DUS: every modality gets B samples (action 0), i.e. plain joint training."""

    name = "uniform"
    methods = ("DUS",)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros(self.action_space.shape, np.float32)


class RandomPolicy(HeuristicPolicy):
    """Uniformly random actions from the env's action space (seeded)."""

    name = "random"

    def act(self, obs: np.ndarray) -> np.ndarray:
        low, high = self.action_space.low, self.action_space.high
        return self.rng.uniform(low, high).astype(np.float32)
