"""Bounds on what a user hands the library: one place, one number per kind of input.

A small input must never cost unbounded time or memory (a 400-byte YAML that expands to
a billion values, ``-c /dev/zero``, a 3 MB ``.npz`` that inflates to gigabytes, a batch or
a class count the machine cannot hold). Each bound below is far above real use and is
checked *before* the work or allocation it guards, with a message that names the setting
and the bound. They are plain module attributes: a user with a genuine need raises one
before building an env (``mmrl_env.limits.MAX_DATA_BYTES = 2**40``); docs/reliability.md
("Bounds") lists them.
"""

from __future__ import annotations

import math
from typing import Any

# --- files: configs (YAML/JSON) ------------------------------------------------------------
MAX_CONFIG_BYTES = 1 << 20  # a config, meta.json, manifest.json or run config.yaml: 1 MiB (shipped ones: < 2 KiB)
MAX_RECORD_BYTES = 256 << 20  # a file the library wrote itself and reads back (results.json, a cache manifest)
MAX_CONFIG_VALUES = 100_000  # values in a config once anchors/aliases are expanded (billion laughs)
MAX_CONFIG_DEPTH = 64  # nesting of mappings/lists in a config (recursion, recursive anchors)

# --- files: archives (.npz data, state.pt, model.zip/agent.zip) ------------------------------
MAX_DATA_BYTES = 64 << 30  # decompressed bytes of one archive: 64 GiB
MAX_COMPRESSION_RATIO = 100  # decompressed / stored bytes of an archive member larger than ...
RATIO_CHECKED_ABOVE = 64 << 20  # ... 64 MiB (real data compresses 1-10x; a zip bomb ~1000x)

# --- sizes: settings that allocate -----------------------------------------------------------
MAX_SAMPLES = 10_000_000  # samples per split of a generated dataset (n_train, n_val, n_test)
MAX_CLASSES = 100_000  # num_classes, and so the largest label + 1 (ImageNet-21k has 21,841)
MAX_WIDTH = 65_536  # a layer width: net_arch entries, hidden, feature_dim, strong_dim, weak_dim
MAX_LAYERS = 64  # entries in a net_arch list
MAX_SEEDS = 10_000  # --seeds of evaluate.py / train_mml.py
MAX_EPOCHS = 1_000_000  # inner-run epochs
MAX_STEPS = 10**12  # env steps of an agent (-n, n_timesteps), rollout lengths, buffer sizes

# setting name -> the name of its bound above (read when checked, so raising a bound takes effect);
# the leaf of a dotted name is looked up: ``dataset_kwargs.n_train`` -> ``n_train``
SETTING_LIMITS: dict[str, str] = {
    "n_train": "MAX_SAMPLES", "n_val": "MAX_SAMPLES", "n_test": "MAX_SAMPLES", "val_size": "MAX_SAMPLES",
    "num_classes": "MAX_CLASSES", "group_size": "MAX_CLASSES",
    "hidden": "MAX_WIDTH", "feature_dim": "MAX_WIDTH", "strong_dim": "MAX_WIDTH", "weak_dim": "MAX_WIDTH",
    "epochs": "MAX_EPOCHS", "seeds": "MAX_SEEDS",
    "n_steps": "MAX_STEPS", "buffer_size": "MAX_STEPS", "batch_size": "MAX_STEPS", "n_timesteps": "MAX_STEPS",
    "total_timesteps": "MAX_STEPS", "learning_starts": "MAX_STEPS",
}


def limit_of(key: str) -> int | None:
    """The bound of setting ``key`` (dotted names are looked up by their last part), if any."""
    name = SETTING_LIMITS.get(key.rsplit(".", 1)[-1])
    return None if name is None else globals()[name]


def check_limit(key: str, value: Any, where: str = "") -> None:
    """``ValueError`` naming ``key`` and its bound when the number ``value`` exceeds it."""
    bound = limit_of(key)
    if bound is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if math.isfinite(value) and value > bound:
        shown = f"{where} " if where else ""
        raise ValueError(f"{shown}{key}={value!r} is above the limit of {bound:,} (mmrl_env.limits; "
                         "raise it there if you really need more)")


def check_width_list(key: str, widths: Any, where: str = "") -> None:
    """A ``net_arch``-like list of layer widths: at most :data:`MAX_LAYERS` positive integers up to
    :data:`MAX_WIDTH` (SB3's ``dict(pi=[...], vf=[...])`` form is checked per list)."""
    shown = f"{where} " if where else ""
    if isinstance(widths, dict):
        for name, value in widths.items():
            check_width_list(f"{key}.{name}", value, where)
        return
    if not isinstance(widths, (list, tuple)):
        raise ValueError(f"{shown}{key}={widths!r}: expected a list of layer widths, e.g. [64, 64]")
    if len(widths) > MAX_LAYERS:
        raise ValueError(f"{shown}{key}: {len(widths)} layers is above the limit of {MAX_LAYERS} (mmrl_env.limits)")
    for w in widths:
        if isinstance(w, dict):
            check_width_list(key, w, where)
            continue
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ValueError(f"{shown}{key}={widths!r}: every width must be a positive integer, got {w!r}")
        if w > MAX_WIDTH:
            raise ValueError(f"{shown}{key}: width {w:,} is above the limit of {MAX_WIDTH:,} (mmrl_env.limits)")
