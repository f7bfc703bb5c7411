"""Our batched Gymnasium vector env as a Stable-Baselines3 ``VecEnv``.

``mmrl_env`` stays free of any agent library; this adapter is where the two meet. SB3's
conventions are those of our ``SAME_STEP`` autoreset: a run that ends is reset within the
step, its last observation goes to ``info["terminal_observation"]``, and the info of a
finished run is its *final* step's info (with ``test`` metrics), so ``VecMonitor``, SB3's
callbacks and our rollouts read episode ends exactly as with ``DummyVecEnv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
    VecEnvWrapper,
)
from torch.utils.tensorboard import SummaryWriter

from mmrl_env.envs.control import control_of
from mmrl_env.envs.ray_vector import RayVectorEnv
from mmrl_env.envs.tensorboard import log_episode, log_runs
from mmrl_env.envs.vector import MultimodalTrainingVectorEnv


class MMRLVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a :class:`MultimodalTrainingVectorEnv` (K inner runs, one engine) or
    a :class:`RayVectorEnv` (actors x K runs; a run whose actor died ends truncated, so SB3
    bootstraps its value from ``terminal_observation``)."""

    def __init__(self, venv: MultimodalTrainingVectorEnv | RayVectorEnv) -> None:
        if not isinstance(venv, (MultimodalTrainingVectorEnv, RayVectorEnv)):
            raise TypeError(f"MMRLVecEnv wraps an mmrl vector env (gym.make_vec(..., vectorization_mode="
                            f"'vector_entry_point'), or a RayVectorEnv), got {type(venv).__name__}")
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"SB3 needs autoreset_mode='SameStep', this env uses {venv.autoreset_mode.value!r}")
        self.venv = venv  # before VecEnv.__init__, which reads render_mode through get_attr
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        obs, self.reset_infos = self.venv.reset_runs(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, infos = self.venv.step_runs(self._actions)
        out = []
        for k, info in enumerate(infos):
            if "final_obs" in info:  # ended this step: SB3 wants the final step's info
                final = dict(info["final_info"])
                final["terminal_observation"] = info["final_obs"]
                final["TimeLimit.truncated"] = bool(truncated[k] and not terminated[k])
                self.reset_infos[k] = {key: v for key, v in info.items() if key not in ("final_obs", "final_info")}
                info = final
            out.append(info)
        return obs, rewards.astype(np.float32), terminated | truncated, out

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return list(self._get_indices(indices))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes are the vector env's (every run shares the spec, spaces and settings)."""
        value = getattr(self.venv, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        method = getattr(self.venv, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs

    @property
    def spec(self) -> Any:
        """The registered id's spec (``gym.make_vec`` sets it), for checkpoints."""
        return self.venv.spec

    # checkpoints: the whole batch of runs
    def get_state(self) -> dict[str, Any]:
        return {"venv": self.venv.get_state(), "reset_infos": self.reset_infos}

    def set_state(self, state: dict[str, Any]) -> None:
        self.venv.set_state(state["venv"])
        self.reset_infos = state["reset_infos"]


class VecTensorBoard(VecEnvWrapper):
    """The vector counterpart of ``TensorBoardInfo``: the same tags, so one TensorBoard layout
    fits single and batched runs. Per step, at the agent's timestep (vector step × K, SB3's
    ``num_timesteps``): every ``info`` leaf and the reward as the mean over the K runs
    (``step/...``) and the spread of the allocation and reward (``step_std/...``,
    ``mmrl_env.envs.tensorboard.log_runs``); per finished
    episode of any run: ``episode/return``, ``episode/length``, its test metrics (``log_test`` only) and one
    histogram of its actions per action dimension (``actions/<modality>`` or ``actions/lambda``),
    counted by episodes."""

    def __init__(self, venv: VecEnv, log_dir: str, log_test: bool = False) -> None:
        super().__init__(venv)
        self.writer = SummaryWriter(log_dir)
        self.log_test = log_test
        self.global_step = 0
        self.episode = 0
        self.action_names = control_of(venv).action_names
        self._actions: list[list[np.ndarray]] = [[] for _ in range(self.num_envs)]
        self._returns = np.zeros(self.num_envs)
        self._pending: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        self._actions = [[] for _ in range(self.num_envs)]
        self._returns[:] = 0.0
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = np.asarray(actions, np.float32).reshape(self.num_envs, -1)
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.global_step += 1
        log_runs(self.writer, self.tb_step, rewards, list(infos))
        for k in range(self.num_envs):
            self._actions[k].append(self._pending[k])
            self._returns[k] += float(rewards[k])
            if dones[k]:
                self.episode += 1
                log_episode(self.writer, self.episode, self._returns[k], self._actions[k], infos[k], self.action_names,
                            self.log_test)
                self._actions[k], self._returns[k] = [], 0.0
        return obs, rewards, dones, infos

    @property
    def tb_step(self) -> int:
        """The x of the last step logged: the agent's timestep."""
        return self.global_step * self.num_envs

    def get_state(self) -> dict[str, Any]:
        """Counters and every run's episode so far, so a resumed run continues the curves."""
        return {"global_step": self.global_step, "episode": self.episode, "returns": self._returns.copy(),
                "actions": [[a.copy() for a in run] for run in self._actions]}

    def set_state(self, state: dict[str, Any]) -> None:
        self.global_step, self.episode = state["global_step"], state["episode"]
        self._returns = np.asarray(state["returns"], dtype=float).copy()
        self._actions = [[np.asarray(a).copy() for a in run] for run in state["actions"]]

    def close(self) -> None:
        self.writer.close()
        super().close()
