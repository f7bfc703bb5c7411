"""Run a policy (trained agent or heuristic) on an env for whole episodes.

``run_episode``: one episode of a single env. ``run_episodes``: one episode per seed, all at
once on a K-run vector env (one batched engine), with the same per-episode records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from mmrl_env.envs.vector import MultimodalTrainingVectorEnv


def run_episode(policy: Any, env: gym.Env, seed: int | None = None, deterministic: bool = True) -> dict[str, Any]:
    """One episode; returns the return, length, final info and the per-step infos/actions."""
    obs, info = env.reset(seed=seed)
    total, steps, infos, actions = 0.0, 0, [info], []
    done = False
    while not done:
        action, _ = policy.predict(obs, deterministic=deterministic)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        steps += 1
        infos.append(info)
        actions.append(np.asarray(action, np.float32))
        done = terminated or truncated
    return {"return": total, "length": steps, "final": info, "infos": infos, "actions": actions}


def run_episodes(policy: Any, venv: MultimodalTrainingVectorEnv, seeds: Sequence[int],
                 deterministic: bool = True) -> list[dict[str, Any]]:
    """One episode per seed on ``venv`` (``num_envs == len(seeds)``, ``autoreset_mode="Disabled"``):
    run k is seeded with ``seeds[k]`` and so is the episode ``run_episode(policy, gym.make(id),
    seed=seeds[k])`` would play (float tolerance). Every step asks the policy once for the whole
    batch of observations. A run whose episode ends (its last iteration, or a diverged loss)
    rests from then on (``step_runs(..., active=...)``: no more actions, no training) while the
    others go on. Returns ``run_episode``'s record per seed, in order."""
    seeds = [int(s) for s in seeds]
    if venv.num_envs != len(seeds):
        raise ValueError(f"the vector env has {venv.num_envs} runs for {len(seeds)} seeds; "
                         "make it with num_envs=len(seeds)")
    if venv.autoreset_mode != AutoresetMode.DISABLED:
        raise ValueError("run_episodes plays one episode per run: make the vector env with autoreset_mode='Disabled'")
    obs, first = venv.reset_runs(seed=seeds)
    episodes = [{"return": 0.0, "length": 0, "final": info, "infos": [info], "actions": []} for info in first]
    alive = np.ones(len(seeds), bool)
    while alive.any():
        actions, _ = policy.predict(obs, deterministic=deterministic)
        actions = np.asarray(actions, np.float32).reshape(venv.action_space.shape)
        obs, rewards, terminated, truncated, infos = venv.step_runs(actions, active=alive)
        for k in np.flatnonzero(alive):
            ep = episodes[k]
            ep["return"] += float(rewards[k])
            ep["length"] += 1
            ep["infos"].append(infos[k])
            ep["actions"].append(actions[k].copy())
            ep["final"] = infos[k]
        alive &= ~(terminated | truncated)
    return episodes
