"""BSS schedulers as policies: λ each epoch, on an env configured as the paper's method.

The action is only λ; *how* λ becomes a sequence (top-λ ranked shuffle, or draws from the
learned p) is the env's ``curriculum`` setting. Each policy declares the env settings it
stands for in ``env_kwargs`` (``train_agent.py`` makes its env with them) and refuses an
env made with another curriculum, rather than silently changing the env.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from mmrl_agents.heuristics.base import HeuristicPolicy
from mmrl_env.envs.control import control_of
from mmrl_env.samplers.curriculum import Pacing


class BSSPolicy(HeuristicPolicy):
    """Base: check the env's curriculum, then map this policy's λ to the env's action."""

    methods = ("BSS",)
    env_kwargs: ClassVar[dict[str, Any]] = {"curriculum": "rank"}

    def __init__(self, env: gym.Env, seed: int | None = None, **params: Any) -> None:
        super().__init__(env, seed, **params)
        needed, used = self.env_kwargs["curriculum"], self.control.settings.get("curriculum")
        if used != needed:
            raise ValueError(f"{self.name} runs on a BSS env made with curriculum={needed!r}, but this one uses "
                             f"{used!r}: gym.make(..., curriculum={needed!r}) (train_agent.py does this for you)")

    def proportion(self, obs: np.ndarray) -> float:
        return 1.0

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.control.action_map.action(self.proportion(obs))


class FullDataPolicy(BSSPolicy):
    """No curriculum: λ = 1 with the rank curriculum, i.e. every epoch is a shuffle of all samples."""

    name = "full"


class LearnedCurriculumPolicy(BSSPolicy):
    """BSS-L: λ = 1 and the env's learned curriculum draws each epoch's sequence from p (eqs. 9–11)."""

    name = "bss-l"
    env_kwargs = {"curriculum": "learned"}


class PacingPolicy(BSSPolicy):
    """BSS-H: λ(t) from a pacing function (root by default, eq. 7) of the epoch index t.

    t = progress · epochs, read from the observation's progress entry (the number of
    epochs already trained in this episode). The paper ranks once: its env settings turn
    re-measuring off. ``t_grow`` (``None`` or ``"auto"``) defaults to the paper's 40 epochs,
    capped at half the run (an 8-epoch run would otherwise never reach λ = 1); an explicit
    ``t_grow`` longer than the run warns, like the learners' period-like parameters.
    """

    name = "bss-h"
    env_kwargs = {"curriculum": "rank", "remeasure_every": None}

    def __init__(self, env: gym.Env, seed: int | None = None, pacing: str = "root", lambda0: float = 0.1,
                 t_grow: float | str | None = None, steps: int = 4) -> None:
        epochs = control_of(env).epochs
        if t_grow is None or t_grow == "auto":
            t_grow = min(40.0, epochs / 2)
        elif float(t_grow) > epochs:
            warnings.warn(f"t_grow={t_grow} is longer than the run ({epochs} epochs): λ never reaches 1; "
                          "use t_grow='auto' (min(40, epochs/2))", stacklevel=2)
        super().__init__(env, seed, pacing=pacing, lambda0=lambda0, t_grow=t_grow, steps=steps)
        self.pace = Pacing(pacing, lambda0, t_grow, steps)

    def proportion(self, obs: np.ndarray) -> float:
        return self.pace(round(float(obs[self.control.layout.progress]) * self.control.epochs))
