"""Keyword-argument checks shared by env ids, learners and the CLIs' config files.

One place decides which keyword arguments a class accepts and how an unknown one is
reported (with the closest valid name), so every entry point refuses a typo the same way.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any


def accepted_kwargs(cls: type) -> list[str]:
    """Keyword arguments ``cls(...)`` accepts: its ``__init__``'s and, while an ``__init__`` passes
    ``**kwargs`` on, its parents' (arguments without a default are left out: callers supply them)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names += [p.name for p in params if p.kind is p.KEYWORD_ONLY
                  or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(dict.fromkeys(names))


def removed_kwargs(cls: type) -> dict[str, str]:
    """Keyword names ``cls`` once took, mapped to their replacement (possibly dotted:
    ``cmd_kwargs.mode`` is the ``mode`` key of ``cmd_kwargs=``), gathered from its classes'
    ``REMOVED_KWARGS``. They are no longer accepted (this is 0.x); they only make the
    unknown-keyword error name the replacement."""
    removed: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        removed.update(vars(klass).get("REMOVED_KWARGS", {}))
    return removed


def unknown_kwargs_message(given: Iterable[str], valid: Iterable[str], what: str, where: str = "",
                           removed: Mapping[str, str] | None = None) -> str | None:
    """``None`` when every name in ``given`` is valid; else a message naming the unknown ones
    (``what``: which kind of names; ``where``: whose), a suggestion for each near miss (a
    ``removed`` old name: its replacement) and the valid names."""
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if not unknown:
        return None
    removed = removed or {}
    hints = []
    for u in unknown:
        if u in removed:
            parent, _, key = removed[u].rpartition(".")
            new = f"{parent}={{{key!r}: ...}}" if parent else f"{key}="
            hints.append(f"{u!r} -> did you mean {new}? ({u}= was renamed before 1.0)")
        elif close := difflib.get_close_matches(u, valid, n=1, cutoff=0.6):
            hints.append(f"{u!r} -> did you mean {close[0]!r}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    owner = f" for {where}" if where else ""
    return f"unknown {what} {unknown}{owner}{hint}; valid: {', '.join(valid)}"


def check_mapping(name: str, value: Any, example: str) -> None:
    """``value`` (``None`` allowed) must be a mapping: a string like ``"epochs=2"`` or rl-zoo's
    ``"dict(...)"`` is refused naming the setting, instead of failing later as ``**value``."""
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"{name}={value!r}: expected a mapping (a dict), e.g. {name}={example}")


def check_names(name: str, value: Any, example: str) -> None:
    """``value`` must be a list or tuple of strings (a bare string would be read letter by letter)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name}={value!r}: expected a list of names, e.g. {name}={example}")
