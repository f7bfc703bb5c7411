"""``"package.module:Name"`` -> the object it names, imported on first use.

The registries (envs, learners, datasets) name their classes and loaders this way so that
listing them imports no torch; this is the one place that turns such a name into the object.
It imports nothing of the project, so every layer may use it.
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(spec: str) -> Any:
    """The attribute ``Name`` of module ``package.module`` for ``spec = "package.module:Name"``.

    The errors name the spec and keep their usual types: ``ValueError`` for a malformed spec,
    ``ModuleNotFoundError`` for a missing module, ``AttributeError`` for a missing attribute."""
    module, sep, name = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or not module or not name or ":" in name:
        raise ValueError(f"{spec!r} is not a 'package.module:Name' spec (one colon between a module path "
                         "and an attribute name, e.g. 'mmrl_env.learners.joint:JointLearner')")
    try:
        obj = importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or not (module == err.name or module.startswith(err.name + ".")):
            raise  # the module exists but one of its own imports is missing: keep that error
        raise ModuleNotFoundError(f"cannot resolve {spec!r}: no module named {err.name!r}", name=err.name) from err
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            raise AttributeError(f"cannot resolve {spec!r}: module {module!r} has no attribute {name!r}") from err
    return obj
