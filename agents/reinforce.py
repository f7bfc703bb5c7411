"""REINFORCE (Williams, 1992), the DUS paper's agent, with SB3's interface.

SB3 ships no REINFORCE. This subclasses SB3's ``OnPolicyAlgorithm`` so that ``learn``,
``predict``, ``save``/``load``, callbacks, the progress bar and TensorBoard logging behave
exactly as for PPO/A2C. Returns are Monte-Carlo (``gae_lambda=1``): set ``n_steps`` to a
multiple of the episode length so rollouts end on episode boundaries (otherwise the tail is
bootstrapped by the critic). Baseline: ``"mean"`` (returns standardised over the rollout,
the classic constant baseline; the critic is not trained) or ``"critic"`` (a learned
state-value baseline, trained on the same returns).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from torch.nn import functional as F


class REINFORCE(OnPolicyAlgorithm):
    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": ActorCriticPolicy}

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: Any,
        learning_rate: float = 1e-3,
        n_steps: int = 32,
        gamma: float = 1.0,
        baseline: str = "mean",
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if baseline not in ("mean", "critic"):
            raise ValueError(f"baseline must be 'mean' or 'critic', got {baseline!r}")
        self.baseline = baseline
        super().__init__(
            policy, env, learning_rate=learning_rate, n_steps=n_steps, gamma=gamma, gae_lambda=1.0,
            ent_coef=ent_coef, vf_coef=vf_coef, max_grad_norm=max_grad_norm, use_sde=False,
            sde_sample_freq=-1, tensorboard_log=tensorboard_log, policy_kwargs=policy_kwargs,
            verbose=verbose, seed=seed, device=device, _init_setup_model=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete),
        )
        if _init_setup_model:
            self._setup_model()

    def train(self) -> None:
        """One policy-gradient step on the whole rollout."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        for data in self.rollout_buffer.get(batch_size=None):
            actions = data.actions
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.long().flatten()
            values, log_prob, entropy = self.policy.evaluate_actions(data.observations, actions)
            returns = data.returns
            if self.baseline == "mean":
                weight = (returns - returns.mean()) / (returns.std() + 1e-8)
                value_loss = th.zeros((), device=returns.device)
            else:
                weight = returns - values.flatten().detach()
                value_loss = F.mse_loss(returns, values.flatten())
            policy_loss = -(weight * log_prob).mean()
            entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
            loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/policy_loss", policy_loss.item())
        self.logger.record("train/value_loss", value_loss.item())
        self.logger.record("train/entropy_loss", entropy_loss.item())
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 1,
              tb_log_name: str = "REINFORCE", reset_num_timesteps: bool = True,
              progress_bar: bool = False) -> REINFORCE:
        return super().learn(total_timesteps=total_timesteps, callback=callback, log_interval=log_interval,
                             tb_log_name=tb_log_name, reset_num_timesteps=reset_num_timesteps,
                             progress_bar=progress_bar)
