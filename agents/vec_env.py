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
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from mmrl_env.envs.vector import MultimodalTrainingVectorEnv


class MMRLVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a :class:`MultimodalTrainingVectorEnv` (K inner runs, one engine)."""

    def __init__(self, venv: MultimodalTrainingVectorEnv) -> None:
        if not isinstance(venv, MultimodalTrainingVectorEnv):
            raise TypeError(f"MMRLVecEnv wraps an mmrl vector env (gym.make_vec(..., vectorization_mode="
                            f"'vector_entry_point')), got {type(venv).__name__}")
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

    # checkpoints: the whole batch of runs
    def get_state(self) -> dict[str, Any]:
        return {"venv": self.venv.get_state(), "reset_infos": self.reset_infos}

    def set_state(self, state: dict[str, Any]) -> None:
        self.venv.set_state(state["venv"])
        self.reset_infos = state["reset_infos"]
