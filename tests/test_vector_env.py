"""K inner runs as one Gymnasium VectorEnv (and an SB3 VecEnv): run k behaves as the single
env with run k's seed, runs are independent, autoreset follows Gymnasium's modes, and SB3
trains on it unchanged."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecCheckNan, VecMonitor

from mmrl_agents.heuristics import HEURISTICS
from mmrl_agents.vec_env import MMRLVecEnv
from mmrl_env.envs.vector import MultimodalTrainingVectorEnv

SEEDS = [3, 11, 29]


def make_vec(env_id: str, small_kwargs: dict, k: int = 3, **kwargs) -> MultimodalTrainingVectorEnv:
    return gym.make_vec(env_id, num_envs=k, vectorization_mode="vector_entry_point", **small_kwargs, **kwargs)


def actions_for(env_id: str, step: int, k: int) -> np.ndarray:
    """A different action per run and step (so that the runs really differ)."""
    dim = 2 if env_id.startswith("DUS") else 1
    rng = np.random.default_rng(100 * step + 7)
    return rng.uniform(-1, 1, (k, dim)).astype(np.float32)


@pytest.mark.parametrize("env_id", ["DUS-Synthetic", "BSS-Synthetic"])
def test_run_k_of_the_batch_is_the_single_env_with_its_seed(small_kwargs, env_id):
    venv = make_vec(env_id, small_kwargs, autoreset_mode="Disabled")
    assert isinstance(venv, MultimodalTrainingVectorEnv) and venv.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    obs, _ = venv.reset(seed=SEEDS)
    singles = [gym.make(env_id, **small_kwargs) for _ in SEEDS]
    first = [env.reset(seed=s)[0] for env, s in zip(singles, SEEDS, strict=True)]
    np.testing.assert_allclose(obs, np.stack(first), atol=1e-6)
    step, done = 0, False
    while not done:
        acts = actions_for(env_id, step, len(SEEDS))
        obs, rewards, terminated, _, infos = venv.step(acts)
        for k, env in enumerate(singles):
            o, r, t, _, info = env.step(acts[k])
            np.testing.assert_allclose(obs[k], o, atol=1e-5, err_msg=f"run {k} step {step}")
            assert rewards[k] == pytest.approx(r, abs=1e-3) and terminated[k] == t
            if t:
                for name, value in info["test"].items():
                    assert infos["test"][name][k] == pytest.approx(value, abs=1e-4)
        done, step = bool(terminated.all()), step + 1


def test_runs_are_independent(small_kwargs):
    a, b = make_vec("DUS-Synthetic", small_kwargs, autoreset_mode="Disabled"), make_vec(
        "DUS-Synthetic", small_kwargs, autoreset_mode="Disabled")
    a.reset(seed=SEEDS)
    b.reset(seed=SEEDS)
    for step in range(3):
        acts = actions_for("DUS-Synthetic", step, 3)
        other = acts.copy()
        other[1] = -other[1]  # change run 1's actions only
        oa, ra, *_ = a.step(acts)
        ob, rb, *_ = b.step(other)
        np.testing.assert_allclose(oa[[0, 2]], ob[[0, 2]], atol=1e-6)
        np.testing.assert_allclose(ra[[0, 2]], rb[[0, 2]], atol=1e-6)
    assert not np.allclose(oa[1], ob[1])


def test_same_step_autoreset_reports_the_final_observation(small_kwargs):
    venv = make_vec("DUS-Synthetic", small_kwargs, k=2)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    venv.reset(seed=[0, 1])
    terminated = np.zeros(2, bool)
    while not terminated.any():
        obs, _, terminated, _, infos = venv.step(np.zeros((2, 2), np.float32))
    assert terminated.all() and infos["_final_obs"].all()
    final = infos["final_obs"][0]
    assert final[venv.layout.progress] == pytest.approx(1.0)  # the ended run's last observation
    assert obs[0][venv.layout.progress] == 0.0  # the new run's first observation
    assert infos["final_info"]["test"]["fused_acc"][0] > 0
    obs, rewards, terminated, _, _ = venv.step(np.zeros((2, 2), np.float32))  # the new runs go on
    assert not terminated.any() and obs[0][venv.layout.progress] > 0


def test_next_step_autoreset_resets_on_the_following_step(small_kwargs):
    venv = make_vec("DUS-Synthetic", small_kwargs, k=2, autoreset_mode="NextStep")
    venv.reset(seed=[0, 1])
    terminated = np.zeros(2, bool)
    while not terminated.any():
        obs, _, terminated, _, _ = venv.step(np.zeros((2, 2), np.float32))
    assert obs[0][venv.layout.progress] == pytest.approx(1.0)  # the ended run's own observation
    obs, rewards, terminated, _, _ = venv.step(np.zeros((2, 2), np.float32))
    assert np.all(rewards == 0) and not terminated.any() and obs[0][venv.layout.progress] == 0.0


def test_disabled_autoreset_refuses_to_step_an_ended_run(small_kwargs):
    venv = make_vec("DUS-Synthetic", small_kwargs, k=2, autoreset_mode="Disabled")
    venv.reset(seed=0)
    terminated = np.zeros(2, bool)
    while not terminated.any():
        _, _, terminated, _, _ = venv.step(np.zeros((2, 2), np.float32))
    with pytest.raises(RuntimeError, match="have ended"):
        venv.step(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="unknown autoreset_mode"):
        make_vec("DUS-Synthetic", small_kwargs, autoreset_mode="Sometimes")


def test_resting_runs_wait_while_the_others_finish(small_kwargs):
    """``step_runs(actions, active=mask)``: run 0 plays its whole episode while run 1 rests,
    then run 1 plays its own; each equals the single env with its seed, and an ended run
    that is asked to step again is refused."""
    venv = make_vec("DUS-Synthetic", small_kwargs, k=2, autoreset_mode="Disabled")
    obs, _ = venv.reset(seed=[4, 9])
    start = obs[1].copy()
    for run, seed in ((0, 4), (1, 9)):
        single = gym.make("DUS-Synthetic", **small_kwargs)
        single.reset(seed=seed)
        mask = np.arange(2) == run
        step, done = 0, False
        while not done:
            acts = actions_for("DUS-Synthetic", step, 2)
            obs, rewards, terminated, _, infos = venv.step_runs(acts, active=mask)
            o, r, t, _, info = single.step(acts[run])
            np.testing.assert_allclose(obs[run], o, atol=1e-5, err_msg=f"run {run} step {step}")
            assert rewards[run] == pytest.approx(r, abs=1e-3) and terminated[run] == t
            other = 1 - run
            assert rewards[other] == 0 and not terminated[other] and infos[other] == {}
            if run == 0:
                np.testing.assert_array_equal(obs[1], start)  # the resting run did not move
            done, step = t, step + 1
        assert infos[run]["test"]["fused_acc"] == pytest.approx(info["test"]["fused_acc"], abs=1e-4)
    with pytest.raises(RuntimeError, match=r"run\(s\) \[0\] have ended"):
        venv.step_runs(np.zeros((2, 2), np.float32), active=np.array([True, False]))
    with pytest.raises(ValueError, match="bool mask"):
        venv.step_runs(np.zeros((2, 2), np.float32), active=np.array([1, 0]))


def test_sb3_ppo_trains_on_the_vec_env_and_sees_terminal_observations(small_kwargs):
    venv = VecCheckNan(VecMonitor(MMRLVecEnv(make_vec("DUS-Synthetic", small_kwargs, k=2))), raise_exception=True)
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.learn(32)  # two rollouts of 8 steps x 2 runs; an episode is 4 steps
    assert model.num_timesteps == 32
    assert len(model.ep_info_buffer) == 8  # VecMonitor saw each run's 4 episodes end
    raw = MMRLVecEnv(make_vec("DUS-Synthetic", small_kwargs, k=2))
    raw.seed(5)
    raw.reset()
    dones = np.zeros(2, bool)
    while not dones.any():
        _, _, dones, infos = raw.step(np.zeros((2, 2), np.float32))
    assert all("terminal_observation" in i and "test" in i for i in infos)


@pytest.mark.parametrize(("algo", "kwargs"), [
    ("a2c", {"n_steps": 4}),
    ("sac", {"learning_starts": 4, "batch_size": 4, "buffer_size": 64}),
    ("reinforce", {"n_steps": 4}),
])
def test_other_agents_train_on_the_vec_env_unchanged(small_kwargs, algo, kwargs):
    from mmrl_agents.factory import make_agent

    venv = VecMonitor(MMRLVecEnv(make_vec("DUS-Synthetic", small_kwargs, k=2)))
    agent = make_agent(algo, venv, kwargs, seed=0, device="cpu")
    agent.learn(16)
    assert agent.num_timesteps >= 16 and len(agent.ep_info_buffer) >= 2  # both runs finished episodes


def test_heuristics_act_on_the_batch_of_observations(small_kwargs):
    venv = make_vec("DUS-Synthetic", small_kwargs)
    policy = HEURISTICS["dus-h"](venv)
    obs, _ = venv.reset(seed=0)
    for _ in range(2):
        actions, _ = policy.predict(obs)
        assert actions.shape == (3, 2)
        obs, *_ = venv.step(actions)
    bss = make_vec("BSS-Synthetic", small_kwargs, curriculum="learned")
    actions, _ = HEURISTICS["bss-l"](bss).predict(bss.reset(seed=0)[0])
    assert actions.shape == (3, 1)


def test_vector_state_round_trip_continues_identically(small_kwargs):
    a = make_vec("BSS-Synthetic", small_kwargs, k=2)
    a.reset(seed=[1, 2])
    a.step(np.array([[0.0], [-1.0]], np.float32))
    snapshot = a.get_state()
    b = make_vec("BSS-Synthetic", small_kwargs, k=2)
    b.set_state(snapshot)
    for step in range(4):  # across the autoreset too
        acts = actions_for("BSS-Synthetic", step, 2)
        oa, ra, ta, *_ = a.step(acts)
        ob, rb, tb, *_ = b.step(acts)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(ta, tb)


def test_reset_runs_refuses_bad_run_indices_and_seeds(small_kwargs):
    """A negative index would silently reset the last run, a float seed silently truncate."""
    venv = make_vec("DUS-Synthetic", small_kwargs, k=2)
    with pytest.raises(IndexError, match="run -1 out of range"):
        venv.reset_runs(seed=[1], runs=[-1])
    with pytest.raises(IndexError, match="run 2 out of range"):
        venv.reset_runs(runs=[2])
    with pytest.raises(ValueError, match="non-negative integers"):
        venv.reset_runs(seed=[1.5, 2])
    with pytest.raises(ValueError, match="non-negative integers"):
        venv.reset_runs(seed=[-3, 2])
    obs, infos = venv.reset_runs(seed=[np.int64(4), None])  # numpy integers are seeds too
    assert obs.shape == (2, venv.single_observation_space.shape[0]) and all(infos)
    with pytest.raises(ValueError, match="one action per run"):
        venv.step_runs(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="unknown split 'dev'; choose one of train, val, test"):
        venv.evaluate_runs("dev")
    assert set(venv.evaluate_runs("val", [1])[0]) == set(venv.evaluate_runs("test", [1])[0])
