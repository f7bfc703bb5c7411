"""Environment ids ``{DUS,BSS}-<Dataset>-v0``, with the short ``{DUS,BSS}-<Dataset>`` kept as
aliases. Torch-free: registering touches no data.

Gymnasium resolves a short name to its newest version (``gymnasium.make("DUS-Synthetic")``
builds ``DUS-Synthetic-v0``, and ``gymnasium.spec`` returns the ``-v0`` spec), but it refuses
to register an unversioned id next to a versioned one and warns ("Using the latest versioned
environment ...") on every ``make``/``spec`` of the short name, whatever the registry holds:
it decides from the id alone. The alias is intended here, so: its spec is put into
``gymnasium.registry`` directly (tools that check the registry, like rl-zoo3's ``--env``,
accept both ids), and that one notice is dropped for the aliases registered here — at its
source, ``gymnasium.logger.warn``, not by a ``warnings`` filter, which ``-W error``, pytest or
a user's ``warnings.simplefilter`` would override. Every other Gymnasium warning is kept.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium import logger as gym_logger
from gymnasium.envs.registration import EnvSpec

from mmrl_env.data.registry import dataset_names
from mmrl_env.kwargs import accepted_kwargs, removed_kwargs, unknown_kwargs_message
from mmrl_env.resolve import resolve

VERSION = "v0"  # bump when an env's dynamics change in a way that changes results
ENTRY_POINT = "mmrl_env.envs.registration:make"
VECTOR_ENTRY_POINT = "mmrl_env.envs.registration:make_vec"

# method -> "module:Class" (resolved only when an env is made). None = not built yet.
METHODS: dict[str, str | None] = {
    "DUS": "mmrl_env.envs.dus:DUSEnv",
    "BSS": "mmrl_env.envs.bss:BSSEnv",
}


class EnvKwargsError(TypeError):
    """An unknown or contradicting env keyword argument. A ``TypeError`` like Python's own, but
    ``gymnasium.make``'s re-raise (``<message> was raised from the environment creator for
    <id> with kwargs (...)``) is cut back to our message, which already names the valid
    keywords and the closest one."""

    GLUE = " was raised from the environment creator for "

    def __init__(self, message: str) -> None:
        super().__init__(message.split(self.GLUE, 1)[0])


def translate_data_root(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``data_root=X`` is short for ``dataset_kwargs={"root": X}``; both at once must agree."""
    if "data_root" not in kwargs:
        return kwargs
    kwargs = dict(kwargs)
    root = kwargs.pop("data_root")
    dataset_kwargs = dict(kwargs.get("dataset_kwargs") or {})
    if "root" in dataset_kwargs and root is not None and str(dataset_kwargs["root"]) != str(root):
        raise EnvKwargsError(f"data_root={root!r} contradicts dataset_kwargs.root={dataset_kwargs['root']!r}; "
                             "give one of them (data_root is short for dataset_kwargs.root)")
    if root is not None:
        dataset_kwargs["root"] = str(root)
    kwargs["dataset_kwargs"] = dataset_kwargs
    return kwargs


def _env_class(method: str, vector: bool) -> type:
    """The method's single-run env class, or (``vector``) its K-run ``VectorEnv`` class."""
    target = METHODS.get(method)
    if target is None:
        built = [m for m, t in METHODS.items() if t]
        raise NotImplementedError(f"the {method} environment is not available in this version of mmrl; "
                                  f"available methods: {', '.join(built)}")
    cls = resolve(target)
    return cls.vector_class if vector else cls


def _checked_kwargs(cls: type, env_id: str, kwargs: dict[str, Any], fixed: tuple[str, ...]) -> dict[str, Any]:
    """``kwargs`` with ``data_root`` translated and Gymnasium's
    ``render_mode=None`` accepted (there is nothing to render: any other mode is refused);
    unknown ones refused with the valid names and the closest one (or, for a name removed
    before 1.0, its replacement)."""
    kwargs = dict(kwargs)
    render_mode = kwargs.pop("render_mode", None)
    if render_mode is not None:
        raise EnvKwargsError(f"render_mode={render_mode!r}: {env_id} has nothing to render (its "
                             "metadata['render_modes'] is empty); pass render_mode=None or leave it out. What the "
                             "env does is in TensorBoard (train_agent.py) and evaluate.py's plots")
    valid = [k for k in accepted_kwargs(cls) if k not in ("dataset", *fixed)] + ["data_root"]
    message = unknown_kwargs_message(kwargs, valid, "keyword argument(s)", env_id, removed_kwargs(cls))
    if message:
        raise EnvKwargsError(message)
    return translate_data_root(kwargs)


def make(method: str, dataset: str, **kwargs: Any) -> gym.Env:
    """Entry point of every registered id (``gym.make``): one inner run."""
    cls = _env_class(method, vector=False)
    kwargs = _checked_kwargs(_env_class(method, vector=True), f"{method}-{dataset}", kwargs,
                             ("num_envs", "autoreset_mode"))
    return cls(dataset=dataset, **kwargs)


def make_vec(method: str, dataset: str, num_envs: int = 1, **kwargs: Any) -> gym.vector.VectorEnv:
    """Vector entry point of every registered id (``gym.make_vec(..., vectorization_mode=
    "vector_entry_point")``): ``num_envs`` inner runs trained as one batched engine."""
    cls = _env_class(method, vector=True)
    kwargs = _checked_kwargs(cls, f"{method}-{dataset}", kwargs, ("num_envs",))
    return cls(num_envs=num_envs, dataset=dataset, **kwargs)


def short_id(env_id: str) -> str:
    """``DUS-Synthetic-v0`` -> ``DUS-Synthetic`` (other ids unchanged)."""
    suffix = f"-{VERSION}"
    return env_id[: -len(suffix)] if env_id.endswith(suffix) else env_id


def versioned_id(env_id: str) -> str:
    """``DUS-Synthetic`` -> ``DUS-Synthetic-v0`` (a versioned id unchanged)."""
    return f"{short_id(env_id)}-{VERSION}"


def env_method(env_id: str) -> str:
    """The method (``DUS``/``BSS``) of a registered id, read from its spec's kwargs: no env is built."""
    method = gym.spec(env_id).kwargs.get("method")
    if method not in METHODS:
        raise ValueError(f"{env_id!r} is not an mmrl env id (its spec names no method of {', '.join(METHODS)})")
    return method


def env_ids(versioned: bool = False) -> list[str]:
    """The registered ids, short (default) or versioned."""
    return [f"{m}-{d}" + (f"-{VERSION}" if versioned else "") for m in METHODS for d in dataset_names()]


ALIASES: set[str] = set()  # the short ids registered by register_envs
ALIAS_NOTICE = re.compile(r"Using the latest versioned environment `[^`]+` instead of the unversioned environment "
                          r"`(?P<short>[^`]+)`")


def _without_alias_notice(warn: Callable[..., None]) -> Callable[..., None]:
    """``gymnasium.logger.warn``, minus its notice for our short ids (see the module docstring)."""

    @functools.wraps(warn)
    def warn_unless_alias(msg: Any, *args: Any, **kwargs: Any) -> None:
        match = ALIAS_NOTICE.search(msg) if isinstance(msg, str) else None
        if match is None or match.group("short") not in ALIASES:
            warn(msg, *args, **kwargs)

    warn_unless_alias.mmrl_aliases = True  # type: ignore[attr-defined]
    return warn_unless_alias


def register_envs() -> None:
    """(Re-)register ``<method>-<dataset>-v0`` and its alias ``<method>-<dataset>`` for every
    method × dataset (call again after ``register_dataset``)."""
    for method in METHODS:
        for dataset in dataset_names():
            short = f"{method}-{dataset}"
            kwargs = {"method": method, "dataset": dataset}
            if f"{short}-{VERSION}" not in gym.registry:
                gym.register(id=f"{short}-{VERSION}", entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                             kwargs=kwargs, disable_env_checker=True)
            if short not in gym.registry:  # the alias; see the module docstring for why not gym.register
                gym.registry[short] = EnvSpec(id=short, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT,
                                              kwargs=kwargs, disable_env_checker=True)
            ALIASES.add(short)
    if not getattr(gym_logger.warn, "mmrl_aliases", False):  # once, however often this is called
        gym_logger.warn = _without_alias_notice(gym_logger.warn)
