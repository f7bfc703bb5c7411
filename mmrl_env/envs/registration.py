"""Environment ids ``{DUS,BSS}-<Dataset>``. Torch-free: registering touches no data."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import gymnasium as gym

from mmrl_env.data.registry import dataset_names

# method -> "module:Class" (resolved only when an env is made). None = not built yet.
METHODS: dict[str, str | None] = {
    "DUS": "mmrl_env.envs.dus:DUSEnv",
    "BSS": "mmrl_env.envs.bss:BSSEnv",
}


def accepted_kwargs(cls: type) -> list[str]:
    """Keyword arguments ``cls(...)`` accepts: its ``__init__``'s and, while an ``__init__`` passes
    ``**kwargs`` on, its parents' (arguments without a default are left out: callers supply them)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in params if p.kind is p.KEYWORD_ONLY
                  or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def make(method: str, dataset: str, **kwargs: Any) -> gym.Env:
    """Entry point of every registered id: resolve the method's env class lazily."""
    target = METHODS.get(method)
    if target is None:
        built = [m for m, t in METHODS.items() if t]
        raise NotImplementedError(f"the {method} environment is not available in this version of mmrl; "
                                  f"available methods: {', '.join(built)}")
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    valid = [k for k in accepted_kwargs(cls) if k != "dataset"]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise TypeError(f"unknown keyword argument(s) {unknown} for {method}-{dataset}; valid: {', '.join(valid)}")
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
