import gymnasium as gym
import numpy as np

from agents.reinforce import REINFORCE


class OneStepBandit(gym.Env):
    """Reward = the action: a policy-gradient method must push its mean action up."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), float(np.clip(action[0], -1, 1)), True, False, {}


def test_reinforce_learns_a_bandit(tmp_path):
    model = REINFORCE("MlpPolicy", OneStepBandit(), learning_rate=3e-2, n_steps=64, seed=0)
    before = model.predict(np.ones(1, np.float32), deterministic=True)[0][0]
    model.learn(64 * 25)
    after = model.predict(np.ones(1, np.float32), deterministic=True)[0][0]
    assert after > before + 0.3
    model.save(tmp_path / "m.zip")
    again = REINFORCE.load(tmp_path / "m.zip")
    assert again.predict(np.ones(1, np.float32), deterministic=True)[0][0] == after


def test_reinforce_critic_baseline_runs():
    model = REINFORCE("MlpPolicy", OneStepBandit(), n_steps=16, baseline="critic", seed=0)
    model.learn(32)
    assert model._n_updates == 2
