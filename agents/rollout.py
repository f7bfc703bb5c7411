"""Run a policy (trained agent or heuristic) on an env for whole episodes."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


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


def summarize(episodes: list[dict[str, Any]], modalities: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Mean and std over episodes of the final validation/test metrics and the return."""
    rows: dict[str, list[float]] = {"return": [], "val_acc": []}
    for ep in episodes:
        rows["return"].append(ep["return"])
        rows["val_acc"].append(ep["final"]["val_acc"])
        for key, value in ep["final"].get("test", {}).items():
            rows.setdefault(f"test_{key}", []).append(value)
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in rows.items()}
