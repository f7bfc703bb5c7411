"""A wrapper that writes what a person inspects in ``info`` to TensorBoard.

Every numeric leaf of ``info`` becomes a scalar tag ``step/<path>`` at the agent's timestep
(nested dicts join with ``/``: ``step/n/audio``, ``step/s_hat/video``,
``step/val_acc_modality/audio``); the reward is ``step/reward``. With K runs per step
(:func:`log_runs`) each tag is the mean over the runs that stepped, at timestep ``step × K``
(Stable-Baselines3's ``num_timesteps``, so the curves line up with ``sb3_1/``), and the
spread over the runs of the policy's allocation and of the reward is ``step_std/<path>``. At the end of an episode:
``episode/return``, ``episode/length``, the test metrics ``episode/test/<metric>`` only when
asked (``log_test``: a curve of test scores during training invites picking a run by them) and one
histogram of the episode's raw actions per action dimension, named by what it controls:
``actions/<modality>`` (DUS: a_j, which sets n_j) or ``actions/lambda`` (BSS: a, which sets
λ). Method-specific quantities (BSS's λ, boosting's classifier counts) appear without code
here; :func:`log_step` and :func:`log_episode` write these tags for any writer (the vector
counterpart, ``mmrl_agents.vec_env.VecTensorBoard``, has the same layout). :func:`write_config`
puts a run's resolved settings in the text and hparams tabs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import yaml
from torch.utils.tensorboard import SummaryWriter

from mmrl_env.envs.control import control_of


def numeric_leaves(info: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(path, value) for every int/float/bool leaf of a nested dict."""
    for key, value in info.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from numeric_leaves(value, path + "/")
        elif isinstance(value, (bool, int, float, np.number)):
            yield path, float(value)


def action_names(env: gym.Env) -> list[str]:
    """A name per action dimension, as the env's :class:`ControlSpec` gives them: the modality
    whose sample quantity it sets (DUS) or ``lambda`` (BSS's curriculum proportion)."""
    return control_of(env).action_names


def flat_settings(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"env_kwargs/epochs": 8, ...}`` with values TensorBoard's hparams
    tab accepts (numbers, strings, booleans; anything else as its string)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_settings(value, path + "/"))
        elif isinstance(value, (bool, int, float, str)):
            out[path] = value
        else:
            out[path] = "None" if value is None else str(value)
    return out


def write_config(log_dir: str | Path, cfg: dict[str, Any], metrics: dict[str, float] | None = None) -> None:
    """The run's resolved settings as YAML in the text tab (``config``); with ``metrics`` (the
    final results) also one row of the hparams tab, so runs can be compared by setting."""
    writer = SummaryWriter(str(log_dir))
    if metrics is None:
        text = yaml.safe_dump(cfg, sort_keys=False)
        writer.add_text("config", "\n".join("    " + line for line in text.splitlines()))  # a Markdown code block
    else:
        writer.add_hparams(flat_settings(cfg), {f"hparam/{k}": v for k, v in metrics.items()}, run_name="hparams")
    writer.close()


# info keys that are not the env's step: the final test metrics (logged per episode) and the
# flag the SB3 adapter adds for bootstrapping (these envs never truncate)
SKIP = ("test", "TimeLimit.truncated")
SPREAD = ("n/", "lambda", "reward")  # the allocation and the reward: their spread over runs is logged too


def log_step(writer: SummaryWriter, step: int, reward: float, info: dict[str, Any],
             skip: tuple[str, ...] = SKIP) -> None:
    """``step/reward`` and ``step/<path>`` for every numeric leaf of ``info`` (but ``skip``) at ``step``."""
    log_runs(writer, step, [reward], [info], skip)


def log_runs(writer: SummaryWriter, step: int, rewards: Any, infos: list[dict[str, Any]],
             skip: tuple[str, ...] = SKIP) -> None:
    """One step of K runs at ``step``: ``step/<path>`` the mean over the runs whose info has the
    leaf (a run that rested has an empty info), ``step_std/<path>`` the standard deviation over
    them for the allocation (``n/<modality>``, ``lambda``) and the reward, when K > 1."""
    values: dict[str, list[float]] = {"reward": [float(r) for r in rewards]}
    for info in infos:
        for tag, value in numeric_leaves({k: v for k, v in info.items() if k not in skip}):
            values.setdefault(tag, []).append(value)
    for tag, vs in values.items():
        writer.add_scalar(f"step/{tag}", float(np.mean(vs)), step)
        if len(vs) > 1 and tag.startswith(SPREAD):
            writer.add_scalar(f"step_std/{tag}", float(np.std(vs)), step)


def log_episode(writer: SummaryWriter, episode: int, episode_return: float, actions: list[np.ndarray],
                info: dict[str, Any], names: list[str], log_test: bool = False) -> None:
    """An ended episode (numbered ``episode``): ``episode/return``, ``episode/length``, its test
    metrics (with ``log_test`` only) and one histogram of its ``actions`` per action dimension, ``actions/<name>``."""
    writer.add_scalar("episode/return", episode_return, episode)
    writer.add_scalar("episode/length", len(actions), episode)
    for tag, value in numeric_leaves(info.get("test", {})) if log_test else ():
        writer.add_scalar(f"episode/test/{tag}", value, episode)
    stacked = np.stack(actions)
    for i, name in enumerate(names[: stacked.shape[1]]):
        writer.add_histogram(f"actions/{name}", stacked[:, i], episode)
    writer.flush()


class TensorBoardInfo(gym.Wrapper):
    """Log ``info``/reward per step and a summary per episode to ``log_dir``."""

    def __init__(self, env: gym.Env, log_dir: str, skip: tuple[str, ...] = SKIP, log_test: bool = False) -> None:
        super().__init__(env)
        self.writer = SummaryWriter(log_dir)
        self.skip, self.log_test = skip, log_test
        self.global_step = 0
        self.episode = 0
        self._actions: list[np.ndarray] = []
        self._return = 0.0
        self.action_names = action_names(env)

    def reset(self, **kwargs: Any):
        self._actions, self._return = [], 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.global_step += 1
        self._actions.append(np.asarray(action, dtype=np.float32).reshape(-1))
        self._return += float(reward)
        log_step(self.writer, self.global_step, float(reward), info, self.skip)
        if terminated or truncated:
            self.episode += 1
            log_episode(self.writer, self.episode, self._return, self._actions, info, self.action_names,
                        self.log_test)
        return obs, reward, terminated, truncated, info

    @property
    def tb_step(self) -> int:
        """The x of the last step logged (one env: the agent's timestep)."""
        return self.global_step

    def get_state(self) -> dict[str, Any]:
        """Step/episode counters and the episode so far, so a resumed run continues the curves."""
        return {"global_step": self.global_step, "episode": self.episode,
                "actions": [a.copy() for a in self._actions], "return": self._return}

    def set_state(self, state: dict[str, Any]) -> None:
        self.global_step, self.episode = state["global_step"], state["episode"]
        self._actions, self._return = [a.copy() for a in state["actions"]], state["return"]

    def close(self) -> None:
        self.writer.close()
        super().close()
