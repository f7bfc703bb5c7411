import gymnasium as gym
import numpy as np
import torch as th

from mmrl_agents.reinforce import REINFORCE


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


def test_reinforce_critic_baseline_learns():
    """With the critic baseline the policy still climbs the bandit, and the critic learns the return."""
    model = REINFORCE("MlpPolicy", OneStepBandit(), learning_rate=3e-2, n_steps=64, baseline="critic", seed=0)
    obs = th.ones(1, 1)
    before = model.predict(np.ones(1, np.float32), deterministic=True)[0][0]
    value_before = model.policy.predict_values(obs).item()
    model.learn(64 * 25)
    after = model.predict(np.ones(1, np.float32), deterministic=True)[0][0]
    value_after = model.policy.predict_values(obs).item()
    assert model._n_updates == 25 and after > before + 0.3
    assert abs(value_after - after) < 0.5 * abs(value_before - after)  # V(s) tracks the (improving) return
