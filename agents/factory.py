"""``--algo`` name -> an agent (SB3 algorithm, REINFORCE, or heuristic policy).

Hyperparameters stay plain data (what a YAML config holds, what a run's ``config.yaml``
records): classes inside ``policy_kwargs`` are given by name (``optimizer_class: RMSprop``,
``activation_fn: Tanh``) and resolved here, on a copy, when the agent is built. SB3 itself
writes into the ``policy_kwargs`` it is given (A2C adds ``optimizer_class=RMSprop``), so the
caller's dict is never passed on.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import math
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3 import A2C, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from mmrl_agents.heuristics import HEURISTICS, HeuristicPolicy
from mmrl_agents.reinforce import REINFORCE
from mmrl_env.envs.control import control_of
from mmrl_env.limits import check_limit, check_width_list

LEARNED: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "reinforce": REINFORCE}
# policy_kwargs entries that SB3 wants as classes: the modules their names are looked up in
CLASS_KWARGS = {"optimizer_class": ("torch.optim", "stable_baselines3.common.sb2_compat.rmsprop_tf_like"),
                "activation_fn": ("torch.nn",)}


def algo_names() -> list[str]:
    return [*LEARNED, *HEURISTICS]


def method_of(env: gym.Env) -> str:
    """The env family (``DUS``/``BSS``) the env declares in its :class:`ControlSpec`."""
    return control_of(env).method


def _class_named(key: str, value: Any, modules: tuple[str, ...]) -> type:
    """``"RMSprop"`` / ``"torch.optim.RMSprop"`` -> the class of that name in ``modules``."""
    base = torch.optim.Optimizer if key == "optimizer_class" else torch.nn.Module
    if isinstance(value, type) and issubclass(value, base):
        return value
    example = "RMSprop" if key == "optimizer_class" else "Tanh"
    if not isinstance(value, str):
        raise ValueError(f"policy_kwargs.{key}={value!r}: give a class name, e.g. {example}")
    name, known = value.rsplit(".", 1)[-1], []
    for module in map(importlib.import_module, modules):
        classes = {n: c for n, c in vars(module).items()
                   if isinstance(c, type) and issubclass(c, base) and c is not base}
        if name in classes:
            return classes[name]
        known += list(classes)
    close = difflib.get_close_matches(name, known, 1)
    raise ValueError(f"policy_kwargs.{key}={value!r} names no class in {' or '.join(modules)}"
                     + (f" (did you mean {close[0]}?)" if close else f", e.g. {example}"))


def resolve_policy_kwargs(policy_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of ``policy_kwargs`` with the class names of :data:`CLASS_KWARGS` resolved."""
    if policy_kwargs is None:
        return None
    if not isinstance(policy_kwargs, dict):
        raise ValueError(f"policy_kwargs must be a mapping (e.g. {{net_arch: [64, 64]}}), got {policy_kwargs!r}")
    out = copy.deepcopy(policy_kwargs)
    for key, modules in CLASS_KWARGS.items():
        if key in out:
            out[key] = _class_named(key, out[key], modules)
    return out


# hyperparameter -> (low, high, low included, high included) for the numbers SB3 takes without checking;
# a schedule (a callable) or SAC's ent_coef="auto..." is left to SB3. The one home of these ranges:
# make_agent checks them for a Python caller, train_agent.py for its config files and flags.
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "gamma": (0, 1, True, True), "gae_lambda": (0, 1, True, True), "tau": (0, 1, False, True),
    "learning_rate": (0, math.inf, False, False), "clip_range": (0, math.inf, False, False),
    "clip_range_vf": (0, math.inf, False, False), "ent_coef": (0, math.inf, True, False),
    "vf_coef": (0, math.inf, True, False), "max_grad_norm": (0, math.inf, False, False),
    "target_kl": (0, math.inf, False, False), "n_steps": (1, math.inf, True, False),
    "batch_size": (1, math.inf, True, False), "n_epochs": (1, math.inf, True, False),
    "buffer_size": (1, math.inf, True, False), "learning_starts": (0, math.inf, True, False),
    "target_update_interval": (1, math.inf, True, False), "sde_sample_freq": (-1, math.inf, True, False),
    "gradient_steps": (-1, math.inf, True, False),
}
INTEGERS = {"n_steps", "batch_size", "n_epochs", "buffer_size", "learning_starts", "target_update_interval",
            "sde_sample_freq", "gradient_steps"}
MAPPINGS = ("policy_kwargs", "replay_buffer_kwargs")


def _range_text(low: float, high: float, low_in: bool, high_in: bool) -> str:
    """``must be positive`` for (0, inf) and [1, inf), else the interval, e.g. ``must be in [0, 1]``."""
    if high == math.inf and (low, low_in) in ((0, False), (1, True)):
        return "must be positive"
    return f"must be in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def check_number(key: str, value: Any, where: str = "") -> None:
    """One hyperparameter of :data:`RANGES`: a finite number (an integer for :data:`INTEGERS`) in its
    range and under its bound in ``mmrl_env.limits``; a ``ValueError`` naming it otherwise."""
    shown = f"{where}: {key}={value!r}" if where else f"{key}={value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{shown}: expected a finite number")
    if key in INTEGERS and not isinstance(value, int):
        raise ValueError(f"{shown}: expected an integer")
    low, high, low_in, high_in = RANGES[key]
    if key == "gradient_steps" and value == 0:  # SB3: -1 = as many as the rollout's env steps; 0 never trains
        raise ValueError(f"{shown}: must be positive, or -1 (as many gradient steps as env steps)")
    if value < low or value > high or (value == low and not low_in) or (value == high and not high_in):
        raise ValueError(f"{shown}: {_range_text(low, high, low_in, high_in)}")
    check_limit(key, value, where)


def _check_mappings(hp: dict[str, Any], where: str) -> None:
    shown = f"{where}: " if where else ""
    for key in MAPPINGS:
        value = hp.get(key)
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{shown}{key}={value!r}: expected a mapping, e.g. {key}: {{net_arch: [64, 64]}} "
                             "(rl-zoo's \"dict(...)\" strings are Python code, which is never evaluated here)")
    arch = (hp.get("policy_kwargs") or {}).get("net_arch")
    if arch is not None:
        check_width_list("policy_kwargs.net_arch", arch, where)


def _check_train_freq(freq: Any, where: str) -> None:
    n = freq[0] if isinstance(freq, (list, tuple)) and freq else freq
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        shown = f"{where}: " if where else ""
        raise ValueError(f"{shown}train_freq={freq!r}: expected a positive integer (or [n, 'step'|'episode'])")


def check_hyperparams(algo: str, hp: dict[str, Any], where: str = "") -> None:
    """Values an agent would take and then train badly on or fail with later (a discount outside
    [0, 1], a non-positive learning rate or rollout, a ``policy_kwargs`` that is not a mapping, a
    ``net_arch`` the machine cannot hold): a ``ValueError`` naming the key and what is expected.
    ``make_agent`` calls it, and so does ``train_agent.py`` on its config, so the CLIs and a
    Python caller are refused alike, with the same message."""
    _check_mappings(hp, where)
    for key, value in hp.items():
        if key in RANGES and value is not None and not callable(value) \
                and not (key == "ent_coef" and isinstance(value, str)):
            check_number(key, value, where)
    if algo in LEARNED and "train_freq" in hp:
        _check_train_freq(hp["train_freq"], where)


def make_agent(algo: str, env: gym.Env, hyperparams: dict[str, Any] | None = None, seed: int | None = None,
               device: str = "auto", tensorboard_log: str | None = None, verbose: int = 0
               ) -> BaseAlgorithm | HeuristicPolicy:
    """Build agent ``algo`` for ``env``; ``hyperparams`` are the algorithm's constructor kwargs."""
    hp = copy.deepcopy(dict(hyperparams or {}))  # SB3 writes into policy_kwargs: never into the caller's config
    if algo in HEURISTICS:
        cls = HEURISTICS[algo]
        method = method_of(env)
        if cls.methods and method not in cls.methods:
            valid = [n for n, c in HEURISTICS.items() if not c.methods or method in c.methods]
            raise ValueError(f"heuristic {algo!r} does not apply to {method} envs; "
                             f"heuristics for {method}: {', '.join(valid)}")
        return cls(env, seed=seed, **hp)
    if algo not in LEARNED:
        raise ValueError(f"unknown algo {algo!r}; valid algos: {', '.join(algo_names())}")
    check_hyperparams(algo, hp)
    policy = hp.pop("policy", "MlpPolicy")
    if "policy_kwargs" in hp:
        hp["policy_kwargs"] = resolve_policy_kwargs(hp["policy_kwargs"])
    return LEARNED[algo](policy, env, seed=seed, device=device, tensorboard_log=tensorboard_log,
                         verbose=verbose, **hp)
