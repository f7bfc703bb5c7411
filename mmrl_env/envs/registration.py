"""Environment ids ``{DUS,BSS}-<Dataset>``. Torch-free: registering touches no data."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from mmrl_env.data.registry import dataset_names
from mmrl_env.kwargs import accepted_kwargs, apply_renames, unknown_kwargs_message

# method -> "module:Class" (resolved only when an env is made). None = not built yet.
METHODS: dict[str, str | None] = {
    "DUS": "mmrl_env.envs.dus:DUSEnv",
    "BSS": "mmrl_env.envs.bss:BSSEnv",
}


def make(method: str, dataset: str, **kwargs: Any) -> gym.Env:
    """Entry point of every registered id: resolve the method's env class lazily."""
    target = METHODS.get(method)
    if target is None:
        built = [m for m, t in METHODS.items() if t]
        raise NotImplementedError(f"the {method} environment is not available in this version of mmrl; "
                                  f"available methods: {', '.join(built)}")
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    kwargs = apply_renames(cls, kwargs)
    valid = [k for k in accepted_kwargs(cls) if k != "dataset"]
    message = unknown_kwargs_message(kwargs, valid, "keyword argument(s)", f"{method}-{dataset}")
    if message:
        raise TypeError(message)
    return cls(dataset=dataset, **kwargs)


def env_ids() -> list[str]:
    return [f"{m}-{d}" for m in METHODS for d in dataset_names()]


def register_envs() -> None:
    """(Re-)register an id for every method × dataset (call again after ``register_dataset``)."""
    for method in METHODS:
        for dataset in dataset_names():
            env_id = f"{method}-{dataset}"
            if env_id in gym.registry:
                continue
            gym.register(id=env_id, entry_point="mmrl_env.envs.registration:make",
                         kwargs={"method": method, "dataset": dataset}, disable_env_checker=True)
