"""Bad input gets a clear message and costs nothing: bad actions, divergence, unknown names,
wrong data layouts. (A resume directory from another env: tests/test_resume.py.)"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from mmrl_env.data import dataset_names
from mmrl_training import evaluate, train_agent, train_mml


def two_envs(kwargs):
    a, b = gym.make("DUS-Synthetic", **kwargs), gym.make("DUS-Synthetic", **kwargs)
    a.reset(seed=1), b.reset(seed=1)
    return a, b


@pytest.mark.parametrize("bad", [[np.nan, 0.0], [0.0, np.inf], [-np.inf, 1.0], [0.1, 0.2, 0.3], [[0.1]], "abc",
                                 None, {"a": 1}])
def test_bad_action_is_refused_and_nothing_is_lost(small_kwargs, bad):
    env, twin = two_envs(small_kwargs)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)
    good = np.array([0.3, -0.3], np.float32)
    obs, reward, *_ = env.step(good)  # the run goes on as if the bad action never came
    twin_obs, twin_reward, *_ = twin.step(good)
    assert np.array_equal(obs, twin_obs) and reward == twin_reward


def test_out_of_range_action_is_clipped_and_counted(small_kwargs):
    env, twin = two_envs(small_kwargs)
    obs, reward, _, _, info = env.step(np.array([3.0, -0.5], np.float32))
    twin_obs, twin_reward, _, _, twin_info = twin.step(np.array([1.0, -0.5], np.float32))
    assert np.array_equal(obs, twin_obs) and reward == twin_reward and info["n"] == twin_info["n"]
    assert info["clipped"] == 1 and twin_info["clipped"] == 0
    _, _, _, _, info = env.step(np.array([-7.0, 7.0], np.float32))
    assert info["clipped"] == 2 and info["clipped_episode"] == 3
    env.reset()
    assert env.step(np.zeros(2, np.float32))[4]["clipped_episode"] == 0


def test_step_out_of_order_is_explained(small_kwargs):
    env = gym.make("BSS-Synthetic", **small_kwargs).unwrapped  # no OrderEnforcing: our own check
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, np.float32))
    env.reset(seed=0)
    terminated = False
    while not terminated:
        terminated = env.step(np.ones(1, np.float32))[2]
    with pytest.raises(RuntimeError, match="has ended"):
        env.step(np.ones(1, np.float32))


def test_divergence_ends_the_episode_and_the_next_reset_works(small_kwargs):
    env = gym.make("DUS-Synthetic", **small_kwargs, optim={"lr": 1e4})
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert info["diverged"] and terminated and reward == 0.0 and "test" not in info
    obs, _ = env.reset()
    assert np.all(np.isfinite(obs)) and env.observation_space.contains(obs)


class DivergenceCount(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.diverged = 0

    def _on_step(self) -> bool:
        self.diverged += sum(bool(i.get("diverged")) for i in self.locals["infos"])
        return True


def test_sb3_agent_keeps_learning_through_divergence(small_kwargs):
    env = gym.make("DUS-Synthetic", **small_kwargs, optim={"lr": 1e4})
    agent = PPO("MlpPolicy", env, n_steps=4, batch_size=4, n_epochs=1, seed=0, device="cpu")
    count = DivergenceCount()
    agent.learn(total_timesteps=8, callback=count)
    assert agent.num_timesteps == 8 and count.diverged >= 2
    assert all(np.isfinite(p.detach().numpy()).all() for p in agent.policy.parameters())


def test_unknown_env_kwargs_and_learners_list_the_valid_ones(small_kwargs):
    with pytest.raises(TypeError, match=r"unknown keyword argument\(s\) \['epoch'\].*valid:.*epochs"):
        gym.make("DUS-Synthetic", epoch=3)
    with pytest.raises(TypeError, match="lambda_min"):
        gym.make("BSS-Synthetic", lambda_mn=0.2)
    with pytest.raises(KeyError, match="known learners: joint"):
        gym.make("DUS-Synthetic", **small_kwargs, learner="nope")
    with pytest.raises(ValueError, match=r"unknown learner_kwargs \['chek_every'\].*check_every"):
        gym.make("DUS-Synthetic", **small_kwargs, learner="boosting", learner_kwargs={"chek_every": 1})
    with pytest.raises(ValueError, match="valid:"):
        gym.make("DUS-Synthetic", **small_kwargs, optim={"learning_rate": 0.1})


def test_every_entry_point_lists_valid_names(tmp_path):
    with pytest.raises(SystemExit, match="valid ids"):
        evaluate.main(["--env", "DUS-Nope", "--policies", "uniform", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown policy 'nope'; heuristics: dus-h"):
        evaluate.main(["--policies", "nope", "--seeds", "1", "--out", str(tmp_path),
                       "--env-kwargs", "dataset_kwargs.n_train=64", "device=cpu"])
    with pytest.raises(SystemExit, match="unknown algo 'dqn'"):
        evaluate.main(["--policies", f"dqn:{tmp_path}", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="valid learners: joint"):
        evaluate.main(["--learners", "joint,nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"unknown keyword argument\(s\) \['epoch'\]"):
        evaluate.main(["--policies", "uniform", "--out", str(tmp_path), "--env-kwargs", "epoch=1"])
    with pytest.raises(SystemExit, match="known datasets: Synthetic"):
        train_mml.main(["--dataset", "Nope"])
    with pytest.raises(SystemExit, match="known learners: joint"):
        train_mml.main(["--learner", "nope"])
    with pytest.raises(SystemExit, match="valid: alpha_ogm"):
        train_mml.main(["--learner", "ogm_ge", "--learner-kwargs", "alpha_og=1"])
    cfg = tmp_path / "h.yaml"
    cfg.write_text(yaml.safe_dump({"default": {"kapa": 3}}))
    with pytest.raises(SystemExit, match="valid:.*kappa"):
        train_agent.main(["--algo", "dus-h", "-c", str(cfg), "-f", str(tmp_path)])
    with pytest.raises(SystemExit, match="unknown baseline"):
        train_agent.main(["--algo", "dus-h", "--baselines", "nope", "-f", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"unknown keyword argument\(s\) \['epochz'\].*valid:.*epochs"):
        train_agent.main(["--algo", "uniform", "-n", "1", "-f", str(tmp_path), "--env-kwargs", "epochz=3"])
    with pytest.raises(SystemExit, match=r"(?s)CremaD data not found: .*missing.*cremad --raw <raw> --out"):
        train_agent.main(["--env", "DUS-CremaD", "--algo", "uniform", "-n", "1", "-f", str(tmp_path),
                          "--env-kwargs", f"dataset_kwargs.root={tmp_path / 'missing'}"])


EMBEDDED = ("Synthetic", "SyntheticMix", "MFeat")  # generated or shipped in the package: no data root


@pytest.mark.parametrize("dataset", [d for d in dataset_names() if d not in EMBEDDED])
def test_data_root_with_the_wrong_layout_says_what_is_expected(tmp_path, dataset):
    """Every dataset with a loader (mmrl_env/data/) names the layout or the prepare step it expects."""
    (tmp_path / "stray.txt").write_text("not a dataset")
    try:
        gym.make(f"DUS-{dataset}", dataset_kwargs={"root": str(tmp_path)}, device="cpu")
    except NotImplementedError:
        pytest.skip(f"{dataset} has no loader yet")
    except FileNotFoundError as err:
        assert "expected" in str(err) or "prepare" in str(err)
    else:
        pytest.fail(f"{dataset} accepted a root without its data")
