"""Snapshot and restore a whole wrapped env (every wrapper layer plus the mmrl env inside).

The mmrl env and our wrappers carry their own ``get_state``/``set_state``. Wrappers from
Gymnasium that ``gym.make`` adds keep a few counters of their own (``OrderEnforcing`` refuses
``step`` until it has seen a ``reset``); those are listed here by class name. A caller that
wraps the env in other libraries' wrappers (the training scripts: SB3's ``Monitor``) passes
their fields too (``wrapper_fields``), so that this module knows no agent library. Any other
wrapper is refused, so that a checkpoint never silently drops state.

``to_safe``/``from_safe`` turn such a snapshot into what ``torch.load(weights_only=True)``
reads back (tensors, numbers, strings, lists, tuples, dicts): numpy arrays become raw-byte
tensors tagged with their dtype, so a state file never needs pickle to load and no code
can travel inside it.
"""

from __future__ import annotations

import collections
import copy
import errno
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

# Gymnasium wrapper class name -> the attributes that carry its state between steps
WRAPPER_FIELDS: dict[str, tuple[str, ...]] = {
    "OrderEnforcing": ("_has_reset",),
    "TimeLimit": ("_elapsed_steps",),
}


def layers(env: Any) -> list[Any]:
    """The wrapper chain from the outermost layer to the unwrapped env: Gymnasium wrappers
    (``.env``) or Stable-Baselines3 ``VecEnvWrapper`` layers (``.venv``, duck-typed so that this
    module imports no agent library) down to the vector env."""
    chain = [env]
    while True:
        layer = chain[-1]
        if isinstance(layer, gym.Wrapper):
            chain.append(layer.env)
        elif hasattr(vars(layer).get("venv"), "step_wait"):  # an SB3 VecEnvWrapper over another VecEnv
            chain.append(layer.venv)
        else:
            return chain


def _fields(layer: gym.Env, wrapper_fields: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    name = type(layer).__name__
    if name not in wrapper_fields:
        raise TypeError(f"cannot checkpoint the wrapper {name}: give it get_state()/set_state() or pass its "
                        f"fields in wrapper_fields (known: {', '.join(wrapper_fields)})")
    return wrapper_fields[name]


def get_env_state(env: gym.Env, wrapper_fields: Mapping[str, tuple[str, ...]] = WRAPPER_FIELDS
                  ) -> list[dict[str, Any]]:
    """One entry per layer, outermost first, each tagged with the layer's class name.
    ``wrapper_fields``: class name -> state attributes of the wrappers without ``get_state``."""
    out = []
    for layer in layers(env):
        if hasattr(type(layer), "get_state"):
            state = layer.get_state()
        else:
            state = copy.deepcopy({f: getattr(layer, f) for f in _fields(layer, wrapper_fields)})
        out.append({"layer": type(layer).__name__, "state": state})
    return out


def set_env_state(env: gym.Env, state: list[dict[str, Any]]) -> None:
    """Restore ``get_env_state``'s snapshot into an env wrapped the same way."""
    chain = layers(env)
    names = [type(layer).__name__ for layer in chain]
    if not isinstance(state, list) or not all(isinstance(s, dict) and "layer" in s and "state" in s for s in state):
        raise ValueError("the saved env state is not a list of {'layer': ..., 'state': ...} entries")
    saved = [s["layer"] for s in state]
    if names != saved:
        raise ValueError(f"the saved env was wrapped as {saved}, this one as {names}")
    for layer, entry in zip(chain, state, strict=True):
        if hasattr(type(layer), "set_state"):
            layer.set_state(entry["state"])
        else:
            for field, value in copy.deepcopy(entry["state"]).items():
                setattr(layer, field, value)


_TAG = "__mmrl__"  # marks an encoded numpy array / scalar / deque inside a safe state


def to_safe(obj: Any, path: str = "state") -> Any:
    """``obj`` with numpy arrays/scalars and deques replaced by tagged dicts of tensors and
    plain values; anything else outside the weights-only types is refused, naming where it is."""
    if obj is None or isinstance(obj, (bool, int, float, str, bytes, torch.Tensor, torch.Size)):
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):
        return _safe_array(obj, path)
    if isinstance(obj, collections.deque):
        return {_TAG: "deque", "maxlen": obj.maxlen, "items": [to_safe(v, f"{path}[]") for v in obj]}
    if isinstance(obj, tuple):
        return tuple(to_safe(v, f"{path}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, list):
        return [to_safe(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        return _safe_dict(obj, path)
    raise TypeError(f"{path}: a {type(obj).__name__} cannot be stored without pickle; "
                    "give its owner a get_state() of tensors, numbers, strings, lists and dicts")


def _safe_array(obj: np.ndarray | np.generic, path: str) -> dict[str, Any]:
    """A numpy array or scalar as its tagged raw bytes, dtype and shape."""
    arr = np.asarray(obj)
    if arr.dtype.hasobject:
        raise TypeError(f"{path}: a numpy array of Python objects cannot be stored without pickle")
    raw = torch.from_numpy(np.ascontiguousarray(arr).reshape(-1).view(np.uint8).copy())
    return {_TAG: "scalar" if isinstance(obj, np.generic) else "ndarray", "dtype": arr.dtype.str,
            "shape": list(arr.shape), "bytes": raw}


def _safe_dict(obj: dict[Any, Any], path: str) -> dict[Any, Any]:
    """A dict with plain keys (the tag key refused), its values made safe."""
    if _TAG in obj:
        raise TypeError(f"{path}: the key {_TAG!r} is reserved")
    for key in obj:
        if not isinstance(key, (str, int, float, bool, type(None))):
            raise TypeError(f"{path}: dict key {key!r} of type {type(key).__name__} cannot be stored")
    return {k: to_safe(v, f"{path}.{k}") for k, v in obj.items()}


def _array(entry: dict[str, Any]) -> np.ndarray:
    """A tagged numpy array, after checking that its dtype, shape and bytes agree (a crafted
    entry is a ``ValueError``, not a numpy error or an allocation of a size it claims)."""
    raw, shape = entry.get("bytes"), entry.get("shape")
    try:
        dtype = np.dtype(entry.get("dtype"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"an array entry has an invalid dtype {entry.get('dtype')!r}") from err
    if dtype.hasobject or not isinstance(raw, torch.Tensor) or raw.dtype != torch.uint8 or raw.dim() != 1:
        raise ValueError(f"an array entry of dtype {dtype} is not stored as raw bytes")
    if not isinstance(shape, list) or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise ValueError(f"an array entry has an invalid shape {shape!r}")
    if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize != raw.numel():
        raise ValueError(f"an array entry says shape {shape} of {dtype} but holds {raw.numel()} bytes")
    return raw.numpy().view(dtype).reshape(shape).copy()


def from_safe(obj: Any) -> Any:
    """Inverse of :func:`to_safe`."""
    if isinstance(obj, dict):
        kind = obj.get(_TAG)
        if kind in ("ndarray", "scalar"):
            arr = _array(obj)
            return arr[()] if kind == "scalar" else arr
        if kind == "deque":
            return collections.deque((from_safe(v) for v in obj["items"]), maxlen=obj["maxlen"])
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(from_safe(v) for v in obj)
    if isinstance(obj, list):
        return [from_safe(v) for v in obj]
    return obj


def save_safe(obj: Any, path: str | Path) -> None:
    """``torch.save`` of :func:`to_safe` (readable by :func:`load_safe` without unpickling code).
    A failed write (torch reports a full disk as a ``RuntimeError``) is an ``OSError`` naming the file."""
    safe = to_safe(obj)
    try:
        torch.save(safe, path)
    except RuntimeError as err:  # the state is already plain values: what failed is the write
        code = errno.ENOSPC if shutil.disk_usage(Path(path).parent).free < (1 << 20) else errno.EIO
        raise OSError(code, f"{os.strerror(code)} (torch.save failed: {' '.join(str(err).split())[:120]})",
                      str(path)) from err


def load_safe(path: str | Path, map_location: Any = None) -> Any:
    """Read a :func:`save_safe` file with ``weights_only=True``: a file that holds anything but
    tensors and plain values (e.g. a crafted pickle) is refused before any of it runs."""
    return from_safe(torch.load(path, map_location=map_location, weights_only=True))

