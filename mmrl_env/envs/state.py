"""Snapshot and restore a whole wrapped env (every wrapper layer plus the mmrl env inside).

The mmrl env and our wrappers carry their own ``get_state``/``set_state``. Wrappers from
Gymnasium and SB3 that ``gym.make`` and the training scripts add keep a few counters of
their own (``OrderEnforcing`` refuses ``step`` until it has seen a ``reset``; SB3's
``Monitor`` holds the current episode's rewards); those are listed here by class name, so
this module imports neither library's internals. Any other wrapper is refused, so that a
checkpoint never silently drops state.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym

# wrapper class name -> the attributes that carry its state between steps
WRAPPER_FIELDS: dict[str, tuple[str, ...]] = {
    "OrderEnforcing": ("_has_reset",),
    "TimeLimit": ("_elapsed_steps",),
    "Monitor": ("rewards", "needs_reset", "episode_returns", "episode_lengths", "episode_times", "total_steps"),
}


def layers(env: gym.Env) -> list[gym.Env]:
    """The wrapper chain from the outermost layer to the unwrapped env."""
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _fields(layer: gym.Env) -> tuple[str, ...]:
    name = type(layer).__name__
    if name not in WRAPPER_FIELDS:
        raise TypeError(f"cannot checkpoint the wrapper {name}: give it get_state()/set_state() or list its "
                        f"fields in mmrl_env.envs.state.WRAPPER_FIELDS (known: {', '.join(WRAPPER_FIELDS)})")
    return WRAPPER_FIELDS[name]


def get_env_state(env: gym.Env) -> list[dict[str, Any]]:
    """One entry per layer, outermost first, each tagged with the layer's class name."""
    out = []
    for layer in layers(env):
        if hasattr(type(layer), "get_state"):
            state = layer.get_state()
        else:
            state = copy.deepcopy({f: getattr(layer, f) for f in _fields(layer)})
        out.append({"layer": type(layer).__name__, "state": state})
    return out


def set_env_state(env: gym.Env, state: list[dict[str, Any]]) -> None:
    """Restore ``get_env_state``'s snapshot into an env wrapped the same way."""
    chain = layers(env)
    names = [type(layer).__name__ for layer in chain]
    saved = [s["layer"] for s in state]
    if names != saved:
        raise ValueError(f"the saved env was wrapped as {saved}, this one as {names}")
    for layer, entry in zip(chain, state, strict=True):
        if hasattr(type(layer), "set_state"):
            layer.set_state(entry["state"])
        else:
            for field, value in copy.deepcopy(entry["state"]).items():
                setattr(layer, field, value)
