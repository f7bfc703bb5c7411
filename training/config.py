"""rl-zoo style hyperparameter files and ``key=value`` / ``key:value`` overrides for the CLIs.

The shipped files live in the top-level ``configs/`` folder of the source tree; a wheel
installs the same files as the package ``training.configs``, i.e. beside this module
(see ``setup.py``), so :func:`config_path` finds them in a checkout, an editable install and a plain
``pip install .`` alike. ``python -m training.config ppo`` prints the path (for rl-zoo3's
``-conf``).
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path
from typing import Any

import yaml

from mmrl_env.envs.registration import short_id, versioned_id
from mmrl_env.kwargs import unknown_kwargs_message

SOURCE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"  # a checkout or an editable install
INSTALLED_CONFIGS = Path(__file__).resolve().parent / "configs"  # a wheel: the package training.configs
# Keys of a config section that are not constructor arguments of the algorithm (rl-zoo's, plus
# eval_episodes: the episodes of train_agent.py's final comparison).
CLI_KEYS = ("n_timesteps", "env_kwargs", "policy", "eval_episodes", "n_envs")
# torch CPU threads of the CLIs: one is fastest for the small Synthetic models, and much
# faster when other processes compete for the cores (measured: bench/threads.py, BENCHMARKS.md)
DEFAULT_THREADS = 1
_PAIR = re.compile(r"^([A-Za-z_][\w.]*)[=:](.*)$", re.DOTALL)


def config_dir() -> Path:
    """The folder of the shipped ``<algo>.yaml`` files: the source tree's ``configs/`` when
    present, else the installed package ``training.configs``."""
    return SOURCE_CONFIGS if SOURCE_CONFIGS.is_dir() else INSTALLED_CONFIGS


def config_path(algo: str) -> Path:
    """The shipped hyperparameter file of ``algo`` (it may not exist: heuristics have none)."""
    return config_dir() / f"{algo}.yaml"


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads``: ``None`` -> :data:`DEFAULT_THREADS`, 0 -> torch's own default."""
    if threads is not None and threads < 0:
        raise SystemExit(f"--threads must be >= 0 (0 = torch's default), got {threads}")
    n = DEFAULT_THREADS if threads is None else threads
    if n > 0:
        import torch

        torch.set_num_threads(n)


def parse_kv(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c:[1, 2]"]`` -> ``{"a": 1, "b": {"c": [1, 2]}}``: ``key=value`` or rl-zoo's
    ``key:value`` (split at the first ``=`` or ``:`` after the key), values parsed as YAML
    (never evaluated as Python, unlike the zoo), dotted keys nest."""
    out: dict[str, Any] = {}
    for pair in pairs:
        match = _PAIR.match(pair)
        if match is None:
            raise ValueError(f"expected key=value or key:value, got {pair!r} "
                             "(e.g. --env-kwargs epochs=4 dataset_kwargs.n_train:500)")
        key, raw = match.groups()
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
    """The section for ``env_id`` (as given, then its short / ``-v0`` form, else ``default``)
    of ``configs/<algo>.yaml`` or ``path``."""
    file = Path(path) if path else config_path(algo)
    if not file.exists():
        if path:
            raise FileNotFoundError(f"config file {file} does not exist")
        return {}
    sections = yaml.safe_load(file.read_text()) or {}
    for key in dict.fromkeys((env_id, short_id(env_id), versioned_id(env_id))):
        if key in sections:
            return dict(sections[key] or {})
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Print the path of a shipped hyperparameter file, e.g. for rl-zoo3: "
                                "python -m rl_zoo3.train ... -conf $(python -m training.config ppo)")
    p.add_argument("algo", help="ppo, a2c, sac or reinforce")
    path = config_path(p.parse_args(argv).algo)
    if not path.is_file():
        shipped = sorted(f.stem for f in config_dir().glob("*.yaml"))
        raise SystemExit(f"no shipped config {path.name}; shipped: {', '.join(shipped)}")
    print(path)


if __name__ == "__main__":
    main()
