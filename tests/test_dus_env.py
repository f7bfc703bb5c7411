import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from sklearn.metrics import f1_score
from stable_baselines3.common.env_checker import check_env as sb3_check_env


def rollout(env, seed, actions):
    obs, info = env.reset(seed=seed)
    trace = [obs]
    rewards, infos = [], [info]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        trace.append(obs)
        rewards.append(r)
        infos.append(info)
        if term:
            break
    return np.array(trace), np.array(rewards), infos


def test_checkers_pass_without_warnings(small_kwargs):
    env = gym.make("DUS-Synthetic", **small_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)


def test_spaces_and_episode_contract(small_kwargs):
    env = gym.make("DUS-Synthetic", **small_kwargs)
    assert env.action_space.shape == (2,)
    assert np.all(np.isfinite(env.observation_space.low)) and np.all(np.isfinite(env.observation_space.high))
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    steps, term = 0, False
    while not term:
        obs, r, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and not trunc and np.isfinite(r)
        steps += 1
    u = env.unwrapped
    assert steps == -(-u.inner_run.total_iterations // u.runs.step_iterations)
    assert obs[u.layout.progress] == pytest.approx(1.0)
    assert set(info["test"]) >= {"fused_acc", "fused_f1", "fused_map", "audio_acc", "video_acc"}
    assert set(info["n"]) == {"audio", "video"} and "s_hat" in info and "d" in info


def test_same_seed_same_trajectory_regardless_of_global_rng(small_kwargs):
    actions = np.random.default_rng(0).uniform(-1, 1, (20, 2)).astype(np.float32)
    env = gym.make("DUS-Synthetic", **small_kwargs)
    torch.manual_seed(1)
    a = rollout(env, 7, actions)
    torch.manual_seed(999)  # SB3 reseeds torch globally: the env must not care
    b = rollout(gym.make("DUS-Synthetic", **small_kwargs), 7, actions)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = rollout(env, 8, actions)
    assert not np.array_equal(a[0], c[0])


def test_rewards_sum_to_total_validation_gain(small_kwargs):
    env = gym.make("DUS-Synthetic", **small_kwargs)
    _, rewards, infos = rollout(env, 0, [np.array([0.5, -0.5], np.float32)] * 50)
    gain = 100 * (infos[-1]["val_acc"] - infos[0]["val_acc"])
    assert rewards.sum() == pytest.approx(gain, abs=1e-4)
    assert abs(gain) > 1.0  # training does move validation accuracy


@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_fixed_budget_reaches_the_trainer(small_kwargs, engine):
    env = gym.make("DUS-Synthetic", engine=engine, **small_kwargs)
    env.reset(seed=0)
    runs, seen = env.unwrapped.runs, []
    observe = runs._observe_batch
    runs._observe_batch = lambda batch, out: (seen.append(batch.sizes[0].tolist()), observe(batch, out))
    _, _, _, _, info = env.step(np.array([-1.0, 1.0], np.float32))
    assert info["n"]["video"] > info["n"]["audio"]
    assert seen and all(sizes == [info["n"]["audio"], info["n"]["video"]] for sizes in seen)
    assert sum(seen[0]) == 2 * small_kwargs["batch_size"]


BAD_ACTIONS = {  # action -> what the message must name
    "too many": (np.zeros(3, np.float32), r"shape \(3,\)"),
    "column": (np.zeros((2, 1), np.float32), r"shape \(2, 1\)"),
    "row": (np.zeros((1, 2), np.float32), r"shape \(1, 2\)"),
    "nan": (np.array([np.nan, 0.0], np.float32), "NaN"),
    "inf": ([np.inf, 0.0], "NaN or infinite"),
    "none": (None, "objects"),
    "string": ("0.5", "a string"),
    "strings": (["0.5", "0.1"], "a string"),
    "bool": (True, "booleans"),
    "bools": ([True, False], "booleans"),
    "complex": ([1j, 0.0], "complex"),
    "dict": ({"audio": 1.0}, "objects"),
}


@pytest.mark.parametrize("case", sorted(BAD_ACTIONS))
def test_bad_actions_are_rejected_clearly(small_kwargs, case):
    env = gym.make("DUS-Synthetic", **small_kwargs).unwrapped
    env.reset(seed=0)
    action, message = BAD_ACTIONS[case]
    with pytest.raises(ValueError, match=message) as err:
        env.step(action)
    assert "2 finite real number(s) in [-1, 1]" in str(err.value)  # says what is expected
    assert int(env.inner_run.iteration[0]) == 0  # a refused action changes nothing


def test_accepted_actions_are_exactly_the_box(small_kwargs):
    env = gym.make("DUS-Synthetic", **small_kwargs).unwrapped
    env.reset(seed=0)
    for action in ([0.5, -0.5], np.array([1, -1], np.int64), np.array([0.0, 0.0], np.float64)):
        env.step(action)
    bss = gym.make("BSS-Synthetic", **small_kwargs).unwrapped
    bss.reset(seed=0)
    assert bss.step(0.5)[4]["lambda"] == pytest.approx(bss.control.action_map.proportion(0.5))  # a number: one entry
    assert bss.step(np.array([2.0]))[4]["clipped"] == 1  # out of the box: clipped and counted


def test_bad_kwargs_are_rejected_clearly(small_kwargs):
    with pytest.raises(ValueError, match="unknown reward"):
        gym.make("DUS-Synthetic", reward="nope", **small_kwargs)
    with pytest.raises(ValueError, match="valid:"):
        gym.make("DUS-Synthetic", optim={"lrr": 1.0}, **small_kwargs)
    with pytest.raises(KeyError, match="joint"):
        gym.make("DUS-Synthetic", learner="nope", **small_kwargs).reset(seed=0)


@pytest.mark.parametrize("reward", ["f1", "loss"])
def test_alternative_rewards(small_kwargs, reward):
    """The reward is the change of the named validation metric, recomputed here by hand."""
    env = gym.make("DUS-Synthetic", reward=reward, obs_extras=["val_acc"], **small_kwargs)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape
    base = env.unwrapped

    def metric() -> float:
        pred, labels = base.inner_run.predict(base.inner_run.dataset.val, base.runs.reward.idx)
        fused, y = pred.fused[0], labels[0]  # run 0 of the K = 1 engine
        if reward == "loss":
            return torch.nn.functional.cross_entropy(fused, y).item()
        return f1_score(y.numpy(), fused.argmax(1).numpy(), average="macro", zero_division=0)

    before = metric()
    _, r, *_ = env.step(np.array([1.0, -1.0], np.float32))
    after = metric()
    expected = before - after if reward == "loss" else 100.0 * (after - before)
    assert expected != 0.0 and r == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("reward", ["final", "auc"])
def test_curve_rewards(small_kwargs, reward):
    """``final`` pays the last validation accuracy once; ``auc`` pays every step's accuracy, so
    the undiscounted return is the area under the validation curve (per-step infos' val_acc)."""
    env = gym.make("DUS-Synthetic", reward=reward, **small_kwargs)
    _, rewards, infos = rollout(env, 0, [np.array([0.5, -0.5], np.float32)] * 50)
    accs = 100 * np.array([i["val_acc"] for i in infos[1:]])
    assert len(rewards) > 1 and infos[-1]["iteration"] == env.unwrapped.inner_run.total_iterations
    if reward == "final":
        np.testing.assert_allclose(rewards, np.r_[np.zeros(len(accs) - 1), accs[-1]], atol=1e-4)
    else:
        np.testing.assert_allclose(rewards, accs, atol=1e-4)
    assert rewards.sum() > 0


def test_divergence_ends_episode(small_kwargs):
    env = gym.make("DUS-Synthetic", optim={"lr": 1e6}, **small_kwargs)
    env.reset(seed=0)
    term, info = False, {}
    for _ in range(20):
        obs, r, term, _, info = env.step(np.zeros(2, np.float32))
        assert np.all(np.isfinite(obs))
        if term:
            break
    assert term and info["diverged"]
