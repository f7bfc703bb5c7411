"""A wrapper that writes what a person inspects in ``info`` to TensorBoard.

Every numeric leaf of ``info`` becomes a scalar tag ``step/<path>`` at the env's global
step (nested dicts join with ``/``: ``step/n/audio``, ``step/s_hat/video``,
``step/val_acc_modality/audio``); the reward is ``step/reward``. At the end of an episode:
``episode/return``, ``episode/length``, the test metrics ``episode/test/<metric>`` and one
histogram of the episode's actions per action dimension (``actions/<i>``). Method-specific
quantities (BSS's λ, boosting's classifier counts) appear without code here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
from torch.utils.tensorboard import SummaryWriter


def numeric_leaves(info: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(path, value) for every int/float/bool leaf of a nested dict."""
    for key, value in info.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from numeric_leaves(value, path + "/")
        elif isinstance(value, (bool, int, float, np.number)):
            yield path, float(value)


class TensorBoardInfo(gym.Wrapper):
    """Log ``info``/reward per step and a summary per episode to ``log_dir``."""

    def __init__(self, env: gym.Env, log_dir: str, skip: tuple[str, ...] = ("test",)) -> None:
        super().__init__(env)
        self.writer = SummaryWriter(log_dir)
        self.skip = skip
        self.global_step = 0
        self.episode = 0
        self._actions: list[np.ndarray] = []
        self._return = 0.0

    def reset(self, **kwargs: Any):
        self._actions, self._return = [], 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.global_step += 1
        self._actions.append(np.asarray(action, dtype=np.float32).reshape(-1))
        self._return += float(reward)
        self.writer.add_scalar("step/reward", reward, self.global_step)
        for tag, value in numeric_leaves({k: v for k, v in info.items() if k not in self.skip}):
            self.writer.add_scalar(f"step/{tag}", value, self.global_step)
        if terminated or truncated:
            self._end_episode(info)
        return obs, reward, terminated, truncated, info

    def _end_episode(self, info: dict[str, Any]) -> None:
        self.episode += 1
        self.writer.add_scalar("episode/return", self._return, self.episode)
        self.writer.add_scalar("episode/length", len(self._actions), self.episode)
        for tag, value in numeric_leaves(info.get("test", {})):
            self.writer.add_scalar(f"episode/test/{tag}", value, self.episode)
        actions = np.stack(self._actions)
        for i in range(actions.shape[1]):
            self.writer.add_histogram(f"actions/{i}", actions[:, i], self.episode)
        self.writer.flush()

    def get_state(self) -> dict[str, Any]:
        """Step/episode counters and the episode so far, so a resumed run continues the curves."""
        return {"global_step": self.global_step, "episode": self.episode,
                "actions": [a.copy() for a in self._actions], "return": self._return}

    def set_state(self, state: dict[str, Any]) -> None:
        self.global_step, self.episode = state["global_step"], state["episode"]
        self._actions, self._return = [a.copy() for a in state["actions"]], state["return"]

    def close(self) -> None:
        self.writer.close()
        super().close()
