"""Deterministic, stratified hold-outs (validation out of train; test for unsplit data).

The official audio-video lists have only train/test, and the reward needs a validation
set that the test never leaks into. We hold out ``fraction`` of *each class* (at least one
sample of every class with two or more), chosen by a permutation seeded with ``seed``, so
the same cache and seed always give the same split on every machine. When every class has
a single sample, one sample is held out all the same: a split is never empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmrl_env.bounded_input import read_json_file


def read_json_object(path: Path, fix: str, limit: int | None = None) -> dict[str, Any]:
    """A JSON object from ``path`` (at most ``limit`` bytes, default ``MAX_CONFIG_BYTES``), or a
    ``ValueError`` naming the file, what is wrong and ``fix``."""
    try:
        value = read_json_file(path, limit=limit)
    except ValueError as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); {fix}") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path} is damaged (a JSON {type(value).__name__}, not an object); {fix}")
    return value


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) positions into ``labels``, both sorted."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        k = int(round(fraction * pos.size))
        k = min(max(k, 1 if pos.size > 1 else 0), pos.size - 1)
        held.append(rng.permutation(pos)[:k])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    if held_out.size == 0 and labels.size >= 2:  # every class a singleton: still a (one-sample) validation split
        held_out = rng.permutation(labels.size)[:1]
    kept = np.setdiff1d(np.arange(labels.size), held_out)
    return kept, held_out
