"""The settings every mmrl env shares, checked before any data is loaded.

One function, so that a bad value fails the same way in ``gym.make``, ``gym.make_vec`` and a
Ray actor, naming the setting and the values it takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from mmrl_env.envs.reward import ValidationReward
from mmrl_env.kwargs import check_mapping, check_names, unknown_kwargs_message
from mmrl_env.limits import check_limit

OBS_EXTRAS = ("val_acc",)
OBS_NORMS = ("none", "chance")
CMD_DEFAULTS = {"mode": "mean", "ema": 0.99}


def check_run_size(name: str, value: Any) -> int:
    """``epochs`` / ``batch_size``: a positive integer within the input limits."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    check_limit(name, int(value))
    return int(value)


def check_env_settings(num_envs: int, epochs: Any, batch_size: Any, cmd_kwargs: Mapping[str, Any] | None,
                       obs_extras: Sequence[str], obs_norm: str, reward: str, val_size: int | None,
                       autoreset_mode: str | AutoresetMode) -> tuple[AutoresetMode, dict[str, Any]]:
    """Refuse a bad shared setting with what was wrong; returns the autoreset mode and the CMD
    monitor's settings with their defaults filled in."""
    if int(num_envs) < 1:
        raise ValueError(f"num_envs must be a positive number of inner runs, got {num_envs}")
    check_run_size("epochs", epochs)
    check_run_size("batch_size", batch_size)
    check_mapping("cmd_kwargs", cmd_kwargs, "{'mode': 'ema', 'ema': 0.99}")
    check_names("obs_extras", obs_extras, "['val_acc']")
    unknown = set(obs_extras) - set(OBS_EXTRAS)
    if unknown:
        raise ValueError(f"unknown obs_extras {sorted(unknown)}; choose from {', '.join(OBS_EXTRAS)}")
    if obs_norm not in OBS_NORMS:
        raise ValueError(f"unknown obs_norm {obs_norm!r}; choose one of {', '.join(OBS_NORMS)}")
    ValidationReward.check(reward, val_size)
    message = unknown_kwargs_message(cmd_kwargs or {}, tuple(CMD_DEFAULTS), "cmd_kwargs")
    if message:
        raise ValueError(message)
    try:
        mode = AutoresetMode(autoreset_mode)
    except ValueError as err:
        raise ValueError(f"unknown autoreset_mode {autoreset_mode!r}; choose one of "
                         f"{', '.join(m.value for m in AutoresetMode)}") from err
    return mode, {**CMD_DEFAULTS, **(cmd_kwargs or {})}
