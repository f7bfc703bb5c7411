"""``--algo`` name -> an agent (SB3 algorithm, REINFORCE, or heuristic policy)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from agents.heuristics import HEURISTICS, HeuristicPolicy
from agents.reinforce import REINFORCE
from mmrl_env.envs.control import control_of

LEARNED: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "reinforce": REINFORCE}


def algo_names() -> list[str]:
    return [*LEARNED, *HEURISTICS]


def method_of(env: gym.Env) -> str:
    """The env family (``DUS``/``BSS``) the env declares in its :class:`ControlSpec`."""
    return control_of(env).method


def make_agent(algo: str, env: gym.Env, hyperparams: dict[str, Any] | None = None, seed: int | None = None,
               device: str = "auto", tensorboard_log: str | None = None, verbose: int = 0
               ) -> BaseAlgorithm | HeuristicPolicy:
    """Build agent ``algo`` for ``env``; ``hyperparams`` are the algorithm's constructor kwargs."""
    hp = dict(hyperparams or {})
    if algo in HEURISTICS:
        cls = HEURISTICS[algo]
        method = method_of(env)
        if cls.methods and method not in cls.methods:
            valid = [n for n, c in HEURISTICS.items() if not c.methods or method in c.methods]
            raise ValueError(f"heuristic {algo!r} does not apply to {method} envs; "
                             f"heuristics for {method}: {', '.join(valid)}")
        return cls(env, seed=seed, **hp)
    if algo not in LEARNED:
        raise ValueError(f"unknown algo {algo!r}; valid algos: {', '.join(algo_names())}")
    policy = hp.pop("policy", "MlpPolicy")
    return LEARNED[algo](policy, env, seed=seed, device=device, tensorboard_log=tensorboard_log,
                         verbose=verbose, **hp)
