"""Up-front checks of every CLI setting, so bad input is refused before anything is created.

Types and ranges of env settings are read from the env class's and the data loader's
signatures (an ``int`` default wants an integer, a ``float`` default a finite number, a
``bool`` default ``true``/``false``) plus a short list of settings that must be positive;
so a new env argument is checked without code here. The env still checks its own values
(names, choices); this only moves the common mistakes in front of the run directory.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from mmrl_env.limits import check_limit
from mmrl_env.resolve import resolve
from mmrl_training.cli_errors import UsageError, usage_errors

# settings (top level, ``dataset_kwargs.*``, ``optim.*``) that are counts or sizes and must be >= 1
POSITIVE = {"epochs", "batch_size", "val_size", "n_train", "n_val", "n_test", "num_classes", "group_size",
            "step_size", "n_min", "n_max", "hidden", "feature_dim", "strong_dim", "weak_dim", "remeasure_every",
            "frames", "size", "max_length", "lr", "temperature", "gamma"}


def leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def check_finite(tree: dict[str, Any], where: str) -> None:
    """Refuse NaN/inf anywhere in a settings tree (YAML reads ``.nan``/``.inf`` as numbers)."""
    for key, value in leaves(tree):
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise UsageError(f"{where} {key}={v}: not a finite number")


def _defaults(func: Any) -> dict[str, tuple[Any, str]]:
    """name -> (default, annotation text) of the keyword parameters of ``func`` (and, for a
    class, of the ``__init__``s it forwards ``**kwargs`` to)."""
    out: dict[str, tuple[Any, str]] = {}
    funcs = [k.__init__ for k in func.__mro__ if "__init__" in vars(k)] if inspect.isclass(func) else [func]
    for f in funcs:
        params = inspect.signature(f).parameters.values()
        for p in params:
            if p.default is not p.empty and p.name not in out:
                out[p.name] = (p.default, str(p.annotation))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out


def _kind(default: Any, annotation: str) -> str | None:
    """'bool', 'int' or 'float' when the setting is one of those (by default value or annotation)."""
    for name, typ in (("bool", bool), ("int", int), ("float", float)):
        if type(default) is typ or annotation.split(" | ")[0] == name:
            return name
    return None


# kind of setting -> (accepted types, what the message expects); a bool is never taken for a number
KINDS: dict[str, tuple[tuple[type, ...], str]] = {"bool": ((bool,), "true or false"),
                                                  "int": ((numbers.Integral,), "an integer"),
                                                  "float": ((numbers.Real,), "a number")}


def check_value(key: str, value: Any, default: Any, annotation: str, where: str, positive: bool = False) -> None:
    """Type and range of one setting (``None`` is accepted where the default or annotation allows it);
    ``positive``: it must be > 0 whatever its name (else when its name is in :data:`POSITIVE`)."""
    kind = _kind(default, annotation)
    if kind is None or (value is None and (default is None or "None" in annotation)):
        return
    shown = f"{where} {key}={value!r}"
    types, expected = KINDS[kind]
    if not isinstance(value, types) or (kind != "bool" and isinstance(value, bool)):
        raise UsageError(f"{shown}: expected {expected}")
    if kind != "bool":
        _check_number(key, value, kind, where, positive or key.rsplit(".", 1)[-1] in POSITIVE)


def _check_number(key: str, value: float, kind: str, where: str, positive: bool) -> None:
    shown = f"{where} {key}={value!r}"
    if not math.isfinite(value):
        raise UsageError(f"{shown}: not a finite number")
    if positive and value <= 0:
        raise UsageError(f"{shown}: must be positive")
    if kind == "int" and value < 0:
        raise UsageError(f"{shown}: must be >= 0")
    with usage_errors():
        check_limit(key, value, where)


def _check_section(values: dict[str, Any], defaults: dict[str, tuple[Any, str]], prefix: str, where: str) -> None:
    for key, value in values.items():
        if key in defaults and not isinstance(value, dict):
            check_value(prefix + key, value, *defaults[key], where)


def env_class(env_id: str) -> type | None:
    from mmrl_env.envs.registration import METHODS

    kwargs = gym.spec(env_id).kwargs
    target = METHODS.get(kwargs.get("method", ""))
    if not target:
        return None
    cls = resolve(target)
    return getattr(cls, "vector_class", cls)  # a single-run env takes its vector env's settings


def dataset_loader(dataset: str) -> Any:
    from mmrl_env.data import registry

    loader = registry._LOADERS.get(dataset)
    if isinstance(loader, str):
        return resolve(loader)
    return loader


def check_dataset_kwargs(dataset: str, kwargs: dict[str, Any], where: str, prefix: str = "") -> None:
    """Types and ranges of a dataset loader's settings, read from its signature (``prefix``: how
    the message names them, e.g. ``dataset_kwargs.`` inside ``--env-kwargs``)."""
    loader = dataset_loader(dataset)
    if loader is not None:
        _check_section(kwargs, _defaults(loader), prefix, where)


def check_env_kwargs(env_id: str, kwargs: dict[str, Any], where: str = "--env-kwargs") -> None:
    """Types and ranges of the env settings ``kwargs`` for ``env_id`` (names are the env's to check)."""
    check_finite(kwargs, where)
    for key, value in kwargs.items():
        if key in ("dataset_kwargs", "optim", "learner_kwargs") and value is not None and not isinstance(value, dict):
            raise UsageError(f"{where} {key}={value!r}: expected a mapping (set its keys: {key}.<name>=<value>)")
    cls = env_class(env_id)
    if cls is not None:
        _check_section(kwargs, _defaults(cls), "", where)
    from mmrl_env.engine.optim import OptimConfig

    optim_defaults = {f.name: (f.default, str(f.type)) for f in dataclasses.fields(OptimConfig)}
    optim = kwargs.get("optim") or {}
    _check_section(optim, optim_defaults, "optim.", where)
    with usage_errors(f"{where} "):  # the library's own check (name, ranges), as gym.make runs it
        OptimConfig(**{k: v for k, v in optim.items() if k in optim_defaults})
    check_dataset_kwargs(gym.spec(env_id).kwargs.get("dataset", ""), kwargs.get("dataset_kwargs") or {}, where,
                         "dataset_kwargs.")
    check_device(kwargs.get("device", "auto"), f"{where} device")


def check_device(device: Any, flag: str = "--device") -> None:
    """``auto``, ``cpu``, ``cuda[:i]``, ``mps``: refused when the device is not there."""
    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"{flag} {device!r} is not a device; use auto, cpu, cuda, cuda:<i> or mps") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{flag} {device}: no CUDA GPU is visible to torch here "
                             "(torch.cuda.is_available() is False); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"{flag} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{flag} {device}: MPS is not available here; use --device cpu or auto")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"{flag} {device!r}: use auto, cpu, cuda, cuda:<i> or mps")


def check_range(flag: str, value: int | None, minimum: int, what: str = "") -> None:
    """``value`` (None = not given) must be >= ``minimum`` and within its bound in
    ``mmrl_env.limits`` (looked up by the flag's name: ``--seeds`` -> ``seeds``)."""
    if value is not None and value < minimum:
        raise UsageError(f"{flag} must be >= {minimum}{what}, got {value}")
    name = flag.split("/")[-1].lstrip("-").replace("-", "_")
    with usage_errors():
        check_limit(name, value, "")


def check_out_dir(path: str | Path | None, flag: str) -> None:
    """An output directory the user named must not be an existing file (said before any work is done)."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise UsageError(f"{flag} {path}: that is a file, not a directory")
