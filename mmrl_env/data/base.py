"""The data contract every dataset loader fulfils.

A dataset is three splits plus one :class:`ModalitySpec` per modality. A split hands out
batches by index (``gather``) so the trainer never iterates a Python DataLoader on the hot
path: small datasets keep whole tensors resident on the device, large ones (issue: real
datasets) implement ``gather`` over a memory-mapped cache.

The inner run reads a split as K runs' splits (:class:`RunView`, from
:meth:`MultimodalDataset.run_view`): here every run shares the one split (:class:`SharedRuns`,
the K-identical view); a task family (:mod:`mmrl_env.data.tasks`) gives each run its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """Host → CUDA without a host-device sync: a pageable blocking copy would wait for every
    queued kernel, and the host could no longer run ahead of the GPU (the point of batching)."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@dataclass(frozen=True)
class ModalitySpec:
    """Name of a modality and how to build its encoder (see ``mmrl_env.models.encoders``)."""

    name: str
    encoder: str
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Split(Protocol):
    """One split (train/val/test): labels on the host, inputs gathered per modality."""

    labels: Tensor

    def __len__(self) -> int: ...

    def gather(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        """Inputs of ``modality`` for the samples ``idx`` (on any device: a host index saves a
        memory-mapped split a wait for the GPU), on the split's device."""
        ...

    def gather_labels(self, idx: Tensor) -> Tensor:
        """Labels of the samples ``idx``, on the split's device."""
        ...

    def to(self, device: torch.device | str) -> Split: ...


class TensorSplit:
    """A split whose inputs are whole tensors (resident on CPU or GPU)."""

    def __init__(self, inputs: list[Tensor], labels: Tensor) -> None:
        n = labels.shape[0]
        for j, x in enumerate(inputs):
            if x.shape[0] != n:
                raise ValueError(f"modality {j} has {x.shape[0]} samples but there are {n} labels")
        self.inputs = inputs
        self.labels = labels.long()
        self._labels_dev = self.labels

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.inputs[0].device

    def gather(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        x = self.inputs[modality]
        return x.index_select(0, to_device(idx, x.device))

    def gather_labels(self, idx: Tensor) -> Tensor:
        return self._labels_dev.index_select(0, to_device(idx, self._labels_dev.device))

    def to(self, device: torch.device | str) -> TensorSplit:
        out = TensorSplit([x.to(device) for x in self.inputs], self.labels)
        out._labels_dev = self.labels.to(device)
        return out


class RunView(Protocol):
    """A split as K runs see it: run k's sample i is sample ``idx[k, i]`` of run k's split."""

    per_run: bool  # whether the runs' inputs differ (a prediction then takes (K, n, ...) inputs)

    def gather_runs(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        """(K, n, ...) inputs of ``modality`` for the (K, n) indices ``idx`` (``train``: augmented)."""
        ...

    def gather_run_labels(self, idx: Tensor) -> Tensor:
        """(K, n) labels for the (K, n) indices ``idx``."""
        ...

    def predict_inputs(self, modality: int, idx: Tensor, num_runs: int) -> Tensor:
        """The inputs of the samples ``idx`` (n,) that every run predicts on: (n, ...) when shared,
        else (K, n, ...)."""
        ...


class SharedRuns:
    """The K-identical view of a split that every run shares."""

    per_run = False

    def __init__(self, split: Split) -> None:
        self.split = split

    def gather_runs(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        # one flat host index: a memory-mapped split reads with it without waiting for the GPU
        return self.split.gather(modality, idx.flatten(), train=train).unflatten(0, tuple(idx.shape))

    def gather_run_labels(self, idx: Tensor) -> Tensor:
        return self.split.gather_labels(idx.flatten()).view(tuple(idx.shape))

    def predict_inputs(self, modality: int, idx: Tensor, num_runs: int) -> Tensor:
        return self.split.gather(modality, idx)


@dataclass
class MultimodalDataset:
    """Three splits and the modalities' specs; what every env and learner consumes."""

    name: str
    modalities: tuple[ModalitySpec, ...]
    num_classes: int
    train: Split
    val: Split
    test: Split
    optim_defaults: dict[str, Any] = field(default_factory=dict)  # OptimConfig fields suited to the data
    source: Path | None = None  # the folder it was read from (None: generated in memory); see data/fingerprint.py

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.modalities)

    def classes_of_runs(self, num_runs: int) -> np.ndarray:
        """(K,) class count of each run's task: all ``num_classes`` here; a task family
        (:mod:`mmrl_env.data.tasks`) draws its own per run. The observation's chance level reads it."""
        return np.full(num_runs, self.num_classes, np.int64)

    def run_view(self, split: Split) -> RunView:
        """``split`` (one of this dataset's) as K runs see it: here the one split every run shares."""
        return SharedRuns(split)

    def draw(self, runs: Sequence[int], seeds: Sequence[int], num_runs: int) -> None:
        """Give the runs ``runs`` (started with ``seeds``) their tasks: nothing to draw here, where
        every run trains on the same task (a task family draws one per run)."""

    def task_seeds(self) -> list[int] | None:
        """The seed each run slot's task was drawn from (what a checkpoint keeps), ``None`` here."""
        return None

    def to(self, device: torch.device | str) -> MultimodalDataset:
        return MultimodalDataset(
            self.name, self.modalities, self.num_classes,
            self.train.to(device), self.val.to(device), self.test.to(device), self.optim_defaults, self.source,
        )
