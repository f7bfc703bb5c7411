"""Shared fixtures: a small Synthetic env that runs an episode in well under a second."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import mmrl_env  # noqa: F401  (registers the env ids)

torch.set_num_threads(1)  # tiny models: threads only add overhead, and CI has 2 cores

SMALL = {
    "dataset_kwargs": {"n_train": 320, "n_val": 100, "n_test": 100},
    "epochs": 2,
    "batch_size": 32,
    "val_size": 100,
    "device": "cpu",
}


@pytest.fixture
def small_kwargs() -> dict[str, Any]:
    return {k: (dict(v) if isinstance(v, dict) else v) for k, v in SMALL.items()}
