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


def _env_class(method: str, vector: bool) -> type:
    """The method's single-run env class, or (``vector``) its K-run ``VectorEnv`` class."""
    target = METHODS.get(method)
    if target is None:
        built = [m for m, t in METHODS.items() if t]
        raise NotImplementedError(f"the {method} environment is not available in this version of mmrl; "
                                  f"available methods: {', '.join(built)}")
    module, name = target.split(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.vector_class if vector else cls


def _checked_kwargs(cls: type, env_id: str, kwargs: dict[str, Any], fixed: tuple[str, ...]) -> dict[str, Any]:
    """``kwargs`` with renamed names moved; unknown ones refused with the valid names."""
    kwargs = apply_renames(cls, kwargs)
    valid = [k for k in accepted_kwargs(cls) if k not in ("dataset", *fixed)]
    message = unknown_kwargs_message(kwargs, valid, "keyword argument(s)", env_id)
    if message:
        raise TypeError(message)
    return kwargs


def make(method: str, dataset: str, **kwargs: Any) -> gym.Env:
    """Entry point of every registered id (``gym.make``): one inner run."""
    cls = _env_class(method, vector=False)
    kwargs = _checked_kwargs(cls.vector_class, f"{method}-{dataset}", kwargs, ("num_envs", "autoreset_mode"))
    return cls(dataset=dataset, **kwargs)


def make_vec(method: str, dataset: str, num_envs: int = 1, **kwargs: Any) -> gym.vector.VectorEnv:
    """Vector entry point of every registered id (``gym.make_vec(..., vectorization_mode=
    "vector_entry_point")``): ``num_envs`` inner runs trained as one batched engine."""
    cls = _env_class(method, vector=True)
    kwargs = _checked_kwargs(cls, f"{method}-{dataset}", kwargs, ("num_envs",))
    return cls(num_envs=num_envs, dataset=dataset, **kwargs)


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
                         vector_entry_point="mmrl_env.envs.registration:make_vec",
                         kwargs={"method": method, "dataset": dataset}, disable_env_checker=True)
