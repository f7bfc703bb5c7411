"""The inner run's settings: :class:`InnerRunConfig`, the device, and :func:`setup_inner_run` (a
registered dataset plus its run settings). The run itself, K runs at once (K = 1: one run), is
:class:`mmrl_env.inner_run.run.InnerRun`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch

from mmrl_env.data import load_dataset
from mmrl_env.data.base import MultimodalDataset
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.kwargs import check_mapping, unknown_kwargs_message


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device; use auto, cpu, cuda, cuda:<i> or mps") from err


@dataclass
class InnerRunConfig:
    """The inner run: batch size B, length in epochs, learner and optimisation."""

    batch_size: int = 64
    epochs: int = 8
    learner: str = "joint"
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_batch_size: int = 1024


def setup_inner_run(dataset: str, dataset_kwargs: dict[str, Any] | None = None, learner: str = "joint",
                    learner_kwargs: dict[str, Any] | None = None, batch_size: int = 64, epochs: int = 8,
                    optim: dict[str, Any] | None = None) -> tuple[MultimodalDataset, InnerRunConfig]:
    """Load a registered dataset and configure a run on it: the one place where a dataset's
    recommended optimisation (``optim_defaults``) meets the caller's overrides (``optim``)."""
    check_mapping("dataset_kwargs", dataset_kwargs, "{'n_train': 500}")
    check_mapping("learner_kwargs", learner_kwargs, "{'alpha': 0.5}")
    check_mapping("optim", optim, "{'lr': 0.01}")
    names = [f.name for f in fields(OptimConfig)]
    message = unknown_kwargs_message(optim or {}, names, "optim setting(s)")
    if message:
        raise ValueError(message)
    data = load_dataset(dataset, **(dataset_kwargs or {}))
    cfg = InnerRunConfig(batch_size=batch_size, epochs=epochs, learner=learner,
                        learner_kwargs=dict(learner_kwargs or {}),
                        optim=OptimConfig(**{**data.optim_defaults, **(optim or {})}))
    return data, cfg
