"""The deterministic policy's schedule at each periodic evaluation, in TensorBoard.

``eval/mean_reward`` says how well the mean policy does, not what it does. A
:class:`ScheduleRecorder` around the evaluation env keeps each evaluation episode's infos;
after every evaluation :class:`ScheduleCallback` draws what the policy chose per decision
step (n_j per modality for DUS, λ and the epoch's sequence for BSS: ``actions.png``'s rows,
the same plotting function, mean ± std over the evaluation episodes) as the image
``eval/schedule`` in SB3's TensorBoard run, at the agent's timestep, next to
``eval/mean_reward``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from mmrl_env.envs.control import control_of
from mmrl_training import report


class ScheduleRecorder(gym.Wrapper):
    """Keeps every episode's infos (the reset's, then each step's) until :meth:`take`."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episodes: list[list[dict[str, Any]]] = []

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.episodes.append([info])
        return obs, info

    def step(self, action: Any):
        out = self.env.step(action)
        if self.episodes:
            self.episodes[-1].append(out[4])
        return out

    def take(self) -> list[list[dict[str, Any]]]:
        """The finished episodes recorded so far (one step at least); clears them."""
        done = [e for e in self.episodes if len(e) > 1]
        self.episodes = []
        return done


class ScheduleCallback(BaseCallback):
    """``EvalCallback(callback_after_eval=...)``: logs the evaluation episodes' schedule."""

    def __init__(self, recorder: ScheduleRecorder, env_id: str) -> None:
        super().__init__()
        self.recorder, self.env_id = recorder, env_id
        self.modalities = control_of(recorder).modalities

    def _on_step(self) -> bool:
        episodes = self.recorder.take()
        writers = [f.writer for f in self.logger.output_formats if isinstance(f, TensorBoardOutputFormat)]
        if not episodes or not writers:
            return True
        records = {"deterministic policy": [report.episode_record({"infos": e, "final": {}, "return": 0.0},
                                                                  self.modalities) for e in episodes]}
        fig = report.per_policy_figure(records, report.ACTION_ROWS, report.ACTION_AXIS,
                                       f"{self.env_id}: schedule at {self.num_timesteps} timesteps "
                                       f"({len(episodes)} evaluation episodes)")
        if fig is not None:
            for writer in writers:
                writer.add_figure("eval/schedule", fig, self.num_timesteps, close=True)
                writer.flush()
        return True
