"""rl-zoo style hyperparameter files and ``key=value`` overrides for the CLIs."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml

from mmrl_env.kwargs import unknown_kwargs_message

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
# Keys of a config section that are not constructor arguments of the algorithm.
CLI_KEYS = ("n_timesteps", "env_kwargs", "policy", "eval_episodes")


def parse_kv(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=[1, 2]"]`` -> ``{"a": 1, "b": {"c": [1, 2]}}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"expected key=value, got {pair!r} "
                             "(e.g. --env-kwargs epochs=4 dataset_kwargs.n_train=500)")
        key, raw = pair.split("=", 1)
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_hyperparams(algo: str, env_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """The section for ``env_id`` (else ``default``) of ``configs/<algo>.yaml`` or ``path``."""
    file = Path(path) if path else CONFIG_DIR / f"{algo}.yaml"
    if not file.exists():
        if path:
            raise FileNotFoundError(f"config file {file} does not exist")
        return {}
    sections = yaml.safe_load(file.read_text()) or {}
    if env_id in sections:
        return dict(sections[env_id] or {})
    if "default" in sections:
        return dict(sections["default"] or {})
    raise KeyError(f"{file} has no section for {env_id!r} and no 'default' section; sections: {', '.join(sections)}")


def check_algo_kwargs(cls: type, hyperparams: dict[str, Any], source: str) -> None:
    """Reject keys that are neither CLI keys nor constructor arguments of ``cls``."""
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = {n for n in params if n not in ("self", "env", "_init_setup_model")} | set(CLI_KEYS)
    message = unknown_kwargs_message(hyperparams, sorted(valid), f"key(s) in {source}", cls.__name__)
    if message:
        raise ValueError(message)
