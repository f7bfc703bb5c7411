"""Keyword-argument checks shared by env ids, learners and the CLIs' config files.

One place decides which keyword arguments a class accepts and how an unknown one is
reported (with the closest valid name), so every entry point refuses a typo the same way.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Iterable, Mapping
from typing import Any


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


def unknown_kwargs_message(given: Iterable[str], valid: Iterable[str], what: str, where: str = "") -> str | None:
    """``None`` when every name in ``given`` is valid; else a message naming the unknown ones
    (``what``: which kind of names; ``where``: whose), a suggestion for each near miss and
    the valid names."""
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if not unknown:
        return None
    hints = [f"{u!r} -> did you mean {close[0]!r}?" for u in unknown
             if (close := difflib.get_close_matches(u, valid, n=1, cutoff=0.6))]
    hint = f" ({'; '.join(hints)})" if hints else ""
    owner = f" for {where}" if where else ""
    return f"unknown {what} {unknown}{owner}{hint}; valid: {', '.join(valid)}"


def apply_renames(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with every old keyword of ``cls`` (its classes' ``RENAMED_KWARGS``: old name ->
    new, possibly dotted, place) moved to its new place, each with a ``FutureWarning``. A value
    given under both names is an error rather than a silent choice."""
    renamed: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        renamed.update(vars(klass).get("RENAMED_KWARGS", {}))
    out = dict(kwargs)
    for old, new in renamed.items():
        if old not in out:
            continue
        value = out.pop(old)
        *parents, leaf = new.split(".")
        node = out
        for p in parents:
            node[p] = dict(node.get(p) or {})
            node = node[p]
        if leaf in node:
            raise TypeError(f"{old}= is the old name of {new}=; give only one of them")
        node[leaf] = value
        shown = f"{parents[0]}={{{leaf!r}: ...}}" if parents else f"{new}="
        warnings.warn(f"{cls.__name__}: {old}= is deprecated, use {shown} (the old name will be removed)",
                      FutureWarning, stacklevel=3)
    return out


def check_mapping(name: str, value: Any, example: str) -> None:
    """``value`` (``None`` allowed) must be a mapping: a string like ``"epochs=2"`` or rl-zoo's
    ``"dict(...)"`` is refused naming the setting, instead of failing later as ``**value``."""
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{name}={value!r}: expected a mapping (a dict), e.g. {name}={example}")


def check_names(name: str, value: Any, example: str) -> None:
    """``value`` must be a list or tuple of strings (a bare string would be read letter by letter)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}={value!r}: expected a list of names, e.g. {name}={example}")
