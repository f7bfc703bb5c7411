"""What an env accepts as an action: exactly what its Box holds, refused otherwise.

Accepted: a real numeric array (float or integer dtype) of the space's shape, or a flat one
with the same number of entries (a plain list works), or a plain number when the action has
one entry. Refused with a message: ``None``, strings, booleans, complex numbers, objects,
any other shape (e.g. (2, 1) for a (2,) space), NaN or infinity. A refused action changes
nothing, so the run continues from the same point with the next action.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

NUMERIC_KINDS = "fiu"  # numpy dtype kinds: float, signed and unsigned integer


def check_action(action: Any, space: gym.spaces.Box) -> tuple[np.ndarray, int]:
    """The action as a float32 array of ``space``'s shape, clipped into the space, and how many
    entries needed clipping. Raises ``ValueError`` naming what was wrong."""
    a = as_action_array(action, space)
    clipped = np.clip(a, space.low, space.high)
    return clipped, int(np.count_nonzero(clipped != a))


def as_action_array(action: Any, space: gym.spaces.Box) -> np.ndarray:
    """The action as a finite float32 array of ``space``'s shape (not clipped), or ``ValueError``."""
    size = int(np.prod(space.shape))
    expected = (f"{size} finite real number(s) in [{space.low.min():g}, {space.high.max():g}] "
                f"(an array of shape {space.shape}" + (" or a flat list" if len(space.shape) > 1 else "") + ")")
    try:
        a = np.asarray(action)
    except (TypeError, ValueError) as err:
        raise ValueError(f"action must be {expected}, got {action!r}") from err
    if a.dtype.kind not in NUMERIC_KINDS:
        what = {"b": "booleans", "c": "complex numbers", "U": "a string", "S": "bytes", "O": "objects"}
        raise ValueError(f"action must be {expected}, got {what.get(a.dtype.kind, a.dtype)}: {action!r}")
    flat_ok = a.ndim == 1 or (a.ndim == 0 and size == 1)
    if a.size != size or not (a.shape == space.shape or flat_ok):
        raise ValueError(f"action must be {expected}, got shape {a.shape}")
    a = a.astype(np.float32).reshape(space.shape)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action contains NaN or infinite values: {a}; expected {expected}")
    return a
