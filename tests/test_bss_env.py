"""BSSEnv: API checks, reproducibility, reward bookkeeping, curriculum wiring, and the BSS heuristics."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import mmrl_env  # noqa: F401  (registers the ids)
from mmrl_agents.heuristics import HEURISTICS
from mmrl_env.envs.bss import BSSEnv
from mmrl_env.envs.dus import DUSEnv
from mmrl_env.monitors.balance import measure_prediction
from mmrl_env.samplers.curriculum import Pacing, rank, subset_size

SMALL = {"dataset_kwargs": {"n_train": 400, "n_val": 100, "n_test": 100}, "epochs": 3, "device": "cpu"}
N_TRAIN = 400


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny MLPs: extra threads only contend on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(**kwargs) -> BSSEnv:
    return BSSEnv(**{**SMALL, **kwargs})


def rollout(env: gym.Env, seed: int, actions: list[float]) -> tuple[list, list[float], list[dict]]:
    obs, info = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], [info]
    for a in actions:
        obs, reward, terminated, _, info = env.step(np.array([a], np.float32))
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated:
            break
    return observations, rewards, infos


@pytest.mark.parametrize("kwargs", [{}, {"curriculum": "learned", "measure": "warmup", "remeasure_every": 1,
                                         "balance_obs": True}])
def test_check_env_passes_without_warnings(kwargs):
    env = gym.make("BSS-Synthetic", **SMALL, **kwargs).unwrapped  # made by id: the render-mode check has a spec
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env)
        sb3_check_env(env)
    assert [str(w.message) for w in caught] == []


def test_registered_id_builds_a_bss_env():
    env = gym.make("BSS-Synthetic", **SMALL)
    assert isinstance(env.unwrapped, BSSEnv)
    assert env.action_space.shape == (1,)


@pytest.mark.parametrize("curriculum", ["rank", "learned"])
def test_same_seed_gives_identical_trajectory(curriculum):
    actions = [-0.5, 0.3, 1.0]
    a = rollout(make(curriculum=curriculum), 11, actions)
    torch.manual_seed(999)  # global RNG state must not matter
    b = rollout(make(curriculum=curriculum), 11, actions)
    for x, y in zip(a[0], b[0], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a[1] == b[1]
    assert a[2] == b[2]


def test_rewards_sum_to_total_validation_gain():
    _, rewards, infos = rollout(make(), 3, [-1.0, 0.0, 1.0])
    assert len(rewards) == 3 and infos[-1]["test"]
    assert sum(rewards) == pytest.approx(100 * (infos[-1]["val_acc"] - infos[0]["val_acc"]), abs=1e-4)


def test_step_trains_one_epoch_on_the_top_lambda_ranked_subset():
    env = make(remeasure_every=None)
    obs, info = env.reset(seed=0)
    assert info["lambda"] == 1.0 and info["subset_size"] == N_TRAIN
    top = set(rank(env.measurement.score)[: subset_size(N_TRAIN, 0.1)].tolist())
    order = env.curriculum.order(0.1, torch.Generator().manual_seed(0))
    assert set(order.tolist()) == top
    obs, _, terminated, _, info = env.step(np.array([-1.0], np.float32))
    assert info["lambda"] == pytest.approx(0.1) and info["subset_size"] == 40 == info["subset_unique"]
    assert info["iteration"] == 1 and info["epoch"] == 1  # one epoch of ⌈40 / 64⌉ batches
    assert info["balance"]["score"] == pytest.approx(env.measurement.score[list(top)].mean().item(), abs=1e-6)
    assert obs[env.layout.progress] == pytest.approx(1 / 3) and not terminated
    assert env.runs.monitor.s_hat.gt(0).all()  # the CMD saw the epoch's unimodal logits


def test_remeasure_schedule_and_warmup():
    env = make(remeasure_every=1, measure="warmup")
    _, info = env.reset(seed=0)
    assert env.inner_run.epoch == 1 and info["measurements"] == 1  # warm-up epoch is not a step
    counts = [env.step(np.ones(1, np.float32))[4]["measurements"] for _ in range(3)]
    assert counts == [2, 3, 3]  # no measurement after the last epoch
    once = make(remeasure_every=None)
    once.reset(seed=0)
    assert [once.step(np.ones(1, np.float32))[4]["measurements"] for _ in range(3)] == [1, 1, 1]


def test_learned_curriculum_draws_with_replacement():
    env = make(curriculum="learned")
    env.reset(seed=0)
    info = env.step(np.ones(1, np.float32))[4]
    assert info["subset_size"] == N_TRAIN > info["subset_unique"]


def test_balance_obs_extra_is_appended_within_bounds():
    env = make(balance_obs=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (env.layout.core_size + 2,) == env.observation_space.shape
    assert obs[-1] == pytest.approx(env.measurement.score.mean().item(), abs=1e-6)
    assert make().observation_space.shape == (env.layout.core_size,)


def test_measurer_scores_the_whole_training_set():
    env = make()
    env.reset(seed=0)
    m = env.measurer.measure_runs(env.inner_run)[0]
    assert m.score.shape == (400,)
    assert m.score.min() >= -1 and m.score.max() <= 1
    assert m.score.max() - m.score.min() > 0.5  # min-max normalised over the training set
    pred, y = env.inner_run.predict(env.inner_run.dataset.train)  # (K = 1, N, C) logits
    assert torch.allclose(m.score, measure_prediction(pred, y[0], 0).score)  # labels (K, N)
    assert torch.allclose(env.measurement.score, m.score)  # reset measured the untrained model


def test_dus_observation_unchanged_by_the_extra_hook():
    env = DUSEnv(**SMALL)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (env.layout.size,)


def test_bss_h_follows_the_pacing_function():
    env = make(epochs=4)
    policy = HEURISTICS["bss-h"](env, t_grow=3)
    _, _, infos = rollout_policy(policy, env)
    pace = Pacing("root", 0.1, 3)
    assert [i["lambda"] for i in infos[1:]] == pytest.approx([pace(t) for t in range(4)], abs=1e-6)
    assert infos[-1]["lambda"] == pytest.approx(1.0)


def test_bss_l_and_full_run_on_their_curriculum():
    with pytest.raises(ValueError, match="curriculum='learned'"):
        HEURISTICS["bss-l"](make())
    env = make(**HEURISTICS["bss-l"].env_kwargs)
    _, _, infos = rollout_policy(HEURISTICS["bss-l"](env), env)
    assert all(i["lambda"] == 1.0 and i["subset_size"] == N_TRAIN for i in infos[1:])
    assert infos[1]["subset_unique"] < N_TRAIN  # draws with replacement from p
    with pytest.raises(ValueError, match="curriculum='rank'"):
        HEURISTICS["full"](env)
    env = make(**HEURISTICS["full"].env_kwargs)
    _, _, infos = rollout_policy(HEURISTICS["full"](env), env)
    assert all(i["subset_unique"] == N_TRAIN for i in infos[1:])
    assert HEURISTICS["bss-h"].methods == ("BSS",)


def test_bss_h_default_t_grow_reaches_full_data_within_the_run():
    env = make(epochs=4, **HEURISTICS["bss-h"].env_kwargs)
    _, _, infos = rollout_policy(HEURISTICS["bss-h"](env), env)
    assert infos[-1]["lambda"] == pytest.approx(1.0)
    assert infos[1]["lambda"] == pytest.approx(0.1)
    assert HEURISTICS["bss-h"](env, t_grow="auto").pace.t_grow == 2.0  # "auto" = min(40, epochs / 2)
    with pytest.warns(UserWarning, match="t_grow=40 is longer than the run"):
        HEURISTICS["bss-h"](env, t_grow=40)


def rollout_policy(policy, env: gym.Env, seed: int = 0) -> tuple[list, list[float], list[dict]]:
    obs, info = env.reset(seed=seed)
    infos, rewards, done = [info], [], False
    while not done:
        obs, reward, done, _, info = env.step(policy.predict(obs)[0])
        infos.append(info)
        rewards.append(reward)
    return obs, rewards, infos


def test_base_and_bss_observation_extras_combine():
    env = make(balance_obs=True, obs_extras=["val_acc"])
    obs, info = env.reset(seed=0)
    m = len(env.modalities)
    assert obs.shape == env.observation_space.shape == (env.layout.core_size + (m + 1) + 2,)
    assert env.observation_space.contains(obs)
    assert obs[env.layout.core_size] == pytest.approx(info["val_acc"])  # val_acc first, then BSS's entries
    assert obs[-1] == pytest.approx(info["balance"]["score"])
