"""training/rollout.py: one episode per seed on a K-run vector env equals the single-env episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from mmrl_agents.heuristics import HEURISTICS
from mmrl_training.rollout import run_episode, run_episodes

SEEDS = [10_000, 10_001]


def make_vec(env_id: str, kwargs: dict, k: int, **extra) -> gym.vector.VectorEnv:
    return gym.make_vec(env_id, num_envs=k, vectorization_mode="vector_entry_point", **kwargs, **extra)


@pytest.mark.parametrize(("env_id", "policy"), [("DUS-Synthetic", "dus-h"), ("BSS-Synthetic", "bss-h")])
def test_run_k_of_the_batch_is_the_single_episode_with_seed_k(small_kwargs, env_id, policy):
    venv = make_vec(env_id, small_kwargs, len(SEEDS), autoreset_mode="Disabled")
    batch = run_episodes(HEURISTICS[policy](venv), venv, SEEDS)
    assert len(batch) == len(SEEDS)
    for seed, ep in zip(SEEDS, batch, strict=True):
        env = gym.make(env_id, **small_kwargs)
        single = run_episode(HEURISTICS[policy](env), env, seed=seed)
        assert set(ep) == set(single) and ep["length"] == single["length"]
        assert ep["return"] == pytest.approx(single["return"], abs=1e-3)
        np.testing.assert_allclose(ep["actions"], single["actions"], atol=1e-4)
        np.testing.assert_allclose([i["val_acc"] for i in ep["infos"]], [i["val_acc"] for i in single["infos"]],
                                   atol=1e-3)
        for name, value in single["final"]["test"].items():
            assert ep["final"]["test"][name] == pytest.approx(value, abs=1e-4), name
    assert batch[0]["infos"][0]["val_acc"] != batch[1]["infos"][0]["val_acc"]  # the seeds really differ


def test_diverged_runs_end_their_episode(small_kwargs):
    venv = make_vec("DUS-Synthetic", {**small_kwargs, "optim": {"lr": 1e4}}, 2, autoreset_mode="Disabled")
    episodes = run_episodes(HEURISTICS["uniform"](venv), venv, [0, 1])
    assert all(ep["final"]["diverged"] and "test" not in ep["final"] for ep in episodes)
    assert all(ep["length"] == len(ep["actions"]) == len(ep["infos"]) - 1 for ep in episodes)


def test_run_episodes_wants_one_run_per_seed_and_no_autoreset(small_kwargs):
    venv = make_vec("DUS-Synthetic", small_kwargs, 2)
    policy = HEURISTICS["uniform"](venv)
    with pytest.raises(ValueError, match="autoreset_mode='Disabled'"):
        run_episodes(policy, venv, [0, 1])
    with pytest.raises(ValueError, match="2 runs for 3 seeds"):
        run_episodes(policy, venv, [0, 1, 2])
