"""rl-zoo style hyperparameter files and ``key=value`` / ``key:value`` overrides for the CLIs.

The shipped files live in the top-level ``configs/`` folder of the source tree; a wheel
installs the same files as the package ``mmrl_training.configs``, i.e. beside this module
(see ``setup.py``), so :func:`config_path` finds them in a checkout, an editable install and a plain
``pip install .`` alike. ``python -m mmrl_training.config ppo`` prints the path (for rl-zoo3's
``-conf``).
"""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path
from typing import Any

import yaml

from mmrl_env.bounded_input import load_yaml, read_yaml_file
from mmrl_env.envs.registration import short_id, versioned_id
from mmrl_env.kwargs import unknown_kwargs_message

SOURCE_CONFIGS = Path(__file__).resolve().parent.parent / "configs"  # a checkout or an editable install
INSTALLED_CONFIGS = Path(__file__).resolve().parent / "configs"  # a wheel: the package mmrl_training.configs
# Keys of a config section that are not constructor arguments of the algorithm (rl-zoo's, plus
# eval_episodes: the episodes of train_agent.py's final comparison).
CLI_KEYS = ("n_timesteps", "env_kwargs", "policy", "eval_episodes", "n_envs")
# torch CPU threads of the CLIs: one is fastest for the small Synthetic models, and much
# faster when other processes compete for the cores (measured: bench/threads.py, BENCHMARKS.md)
DEFAULT_THREADS = 1
DEFAULT_TIMESTEPS = 4096  # train_agent.py's env steps when neither -n nor the config says
DEFAULT_EVAL_FREQ = 1024  # env steps between deterministic evaluations of a learning agent (0 = off)
EVAL_EPISODES = 3  # episodes per periodic evaluation; different inner-run seeds each time
# evaluate.py's default baseline: no rebalancing (uniform on DUS envs, full data on BSS envs; plain joint
# training for --learners); tests/test_cli_help.py checks these are heuristics of that method
DEFAULT_BASELINES = {"DUS": "uniform", "BSS": "full"}
LEARNER_BASELINE = "joint"


def config_dir() -> Path:
    """The folder of the shipped ``<algo>.yaml`` files: the source tree's ``configs/`` when
    present, else the installed package ``mmrl_training.configs``."""
    return SOURCE_CONFIGS if SOURCE_CONFIGS.is_dir() else INSTALLED_CONFIGS


def config_path(algo: str) -> Path:
    """The shipped hyperparameter file of ``algo`` (it may not exist: heuristics have none)."""
    return config_dir() / f"{algo}.yaml"


def set_threads(threads: int | None) -> None:
    """``torch.set_num_threads``: ``None`` -> :data:`DEFAULT_THREADS`, 0 -> torch's own default."""
    if threads is not None and threads < 0:
        raise SystemExit(f"--threads must be >= 0 (0 = torch's default), got {threads}")
    n = DEFAULT_THREADS if threads is None else threads
    from mmrl_env import set_default_threads

    set_default_threads(n)  # the envs' inner training uses the same count (0: torch's own)
    if n > 0:
        import torch

        torch.set_num_threads(n)


# YAML 1.1 (PyYAML) reads 1e-3 as a string (it wants 1.0e-3); numbers written like this are numbers
NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_value(raw: str, key: str = "") -> Any:
    """A ``key=value`` value as YAML, with scientific notation read as a number."""
    try:
        value = load_yaml(raw, f"the value of {key}" if key else "the value")
    except yaml.YAMLError as err:
        where = f" of {key}" if key else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(f"cannot read the value{where} {raw!r} ({problem}); quote strings, "
                         "write lists as [1, 2] and mappings as {a: 1}") from err
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value)
    return _numbers(value)


def _numbers(value: Any) -> Any:
    """Scientific-notation strings inside lists and mappings become numbers too."""
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PAIR = re.compile(r"^([^=:]*)[=:](.*)$", re.DOTALL)  # key, then = or rl-zoo's :, then the value


def parse_kv(pairs: list[str], flag: str = "--env-kwargs") -> dict[str, Any]:
    """``["a=1", "b.c:[1, 2]"]`` -> ``{"a": 1, "b": {"c": [1, 2]}}``: ``key=value`` or rl-zoo's
    ``key:value`` (split at the first ``=`` or ``:``), values parsed as YAML (never evaluated as
    Python, unlike the zoo; ``1e-3`` is a number), dotted keys nest, a key given again
    overrides. A malformed pair or a key that is both a value and a section raises
    ``ValueError`` naming it."""
    out: dict[str, Any] = {}
    example = f"(e.g. {flag} epochs=4 dataset_kwargs.n_train=500)"
    for pair in pairs:
        match = _PAIR.match(pair)
        if match is None:
            raise ValueError(f"{flag}: expected key=value or key:value, got {pair!r} {example}")
        key, raw = match.groups()
        if not KEY.fullmatch(key):
            raise ValueError(f"{flag}: {key!r} in {pair!r} is not a setting name (letters, digits, _; "
                             f"dots for nested settings) {example}")
        node = out
        *parents, leaf = key.split(".")
        for i, p in enumerate(parents):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"{flag}: {'.'.join(parents[:i + 1])} is given a value and nested keys "
                                 f"({pair!r}); give one or the other")
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"{flag}: {key} is given nested keys and a value ({pair!r}); give one or the other")
        try:
            node[leaf] = parse_value(raw, key)
        except ValueError as err:
            raise ValueError(f"{flag}: {err}") from err
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(file: Path) -> Any:
    """The contents of the YAML file ``file`` (``{}`` when empty); an unreadable, malformed or
    unbounded file (``mmrl_env.bounded_input``: size, alias expansion, nesting) raises
    ``ValueError`` naming it (and the line and column of a syntax error)."""
    try:
        return read_yaml_file(file) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ValueError(f"the config file {file} is not valid YAML{where}: {problem}") from err


def load_hyperparams(algo: str, env_id: str, path: str | Path | None = None) -> dict[str, Any]:
    """The section for ``env_id`` (as given, then its short / ``-v0`` form, else ``default``)
    of ``configs/<algo>.yaml`` or ``path``."""
    file = Path(path) if path else config_path(algo)
    if not file.exists():
        if path:
            raise FileNotFoundError(f"config file {file} does not exist")
        return {}
    sections = read_yaml(file)
    if not isinstance(sections, dict):
        raise ValueError(f"the config file {file} must map env ids (or 'default') to sections of "
                         f"hyperparameters, got a {type(sections).__name__}")
    names = [k for k in dict.fromkeys((env_id, short_id(env_id), versioned_id(env_id))) if k in sections]
    name = names[0] if names else "default" if "default" in sections else None
    if name is None:
        raise KeyError(f"{file} has no section for {env_id!r} and no 'default' section; "
                       f"sections: {', '.join(map(str, sections))}")
    section = sections[name] or {}
    if not isinstance(section, dict):
        raise ValueError(f"section {name!r} of {file} must map hyperparameter names to values, "
                         f"got {section!r}")
    return _numbers(dict(section))


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
                                "python -m rl_zoo3.train ... -conf $(python -m mmrl_training.config ppo)")
    p.add_argument("algo", help="ppo, a2c, sac or reinforce")
    path = config_path(p.parse_args(argv).algo)
    if not path.is_file():
        shipped = sorted(f.stem for f in config_dir().glob("*.yaml"))
        raise SystemExit(f"no shipped config {path.name}; shipped: {', '.join(shipped)}")
    print(path)


if __name__ == "__main__":
    main()
