"""Datasets whose runs train on *different* tasks: a task family (one task per inner run).

A :class:`TaskFamilyDataset` holds one task per run slot of a K-run inner run, as (K, N, ...)
tensors: every run's split has the same length N and every modality the same (padded) input
size, so the K runs still train as one batched engine step; only the data differ. The
trainer asks the family for a fresh task whenever it starts a run (``draw``): the task is a
function of the run's seed alone, so run k of a batch trains on the task the same seed draws
alone, and paired comparisons (``evaluate.py``: common random numbers) see the same task
for every policy.

A split of such a dataset is a :class:`RunSplit`, its own :class:`~mmrl_env.data.base.RunView`:
the inner run gathers its batches and predictions per run (``gather_runs``), as it does through
the K-identical view of a split that every run shares.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmrl_env.data.base import ModalitySpec, MultimodalDataset, Split, to_device


class RunSplit:
    """One split of K run slots: inputs per modality (K, N, ...), labels (K, N)."""

    per_run = True  # a RunView of itself

    def __init__(self, inputs: list[Tensor], labels: Tensor) -> None:
        self.inputs, self.labels = inputs, labels.long()

    def __len__(self) -> int:
        return self.labels.shape[1]

    def gather(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        raise TypeError("this split holds one task per run: gather per run with gather_runs(modality, idx (K, n))")

    def gather_labels(self, idx: Tensor) -> Tensor:
        raise TypeError("this split holds one task per run: gather per run with gather_run_labels(idx (K, n))")

    def gather_runs(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        """(K, n, ...) inputs of ``modality``: row i of run k is sample ``idx[k, i]`` of run k's task
        (drawn tasks are not augmented: ``train`` changes nothing)."""
        x = self.inputs[modality]
        idx = to_device(idx, x.device)
        return torch.gather(x, 1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand(*idx.shape, *x.shape[2:]))

    def gather_run_labels(self, idx: Tensor) -> Tensor:
        return torch.gather(self.labels, 1, to_device(idx, self.labels.device))

    def predict_inputs(self, modality: int, idx: Tensor, num_runs: int) -> Tensor:
        return self.gather_runs(modality, idx.expand(num_runs, -1))

    def to(self, device: torch.device | str) -> RunSplit:
        return RunSplit([x.to(device) for x in self.inputs], self.labels.to(device))


@dataclass
class Task:
    """One drawn task: per split (train, val, test) the per-modality inputs, already padded to
    the family's sizes, and the labels; ``num_classes`` is the classes the task uses (≤ the
    family's head size); ``info`` says what was drawn (strong modality, regime, ...)."""

    splits: tuple[tuple[list[np.ndarray], np.ndarray], ...]
    num_classes: int
    info: dict


class TaskFamilyDataset(MultimodalDataset):
    """A :class:`MultimodalDataset` whose run slots hold tasks drawn by :meth:`make_task`.

    ``train``/``val``/``test`` are :class:`RunSplit` s sized for ``num_runs`` slots once the
    trainer calls :meth:`draw` (on every run start). ``run_classes`` (K,) holds each slot's
    class count, which the env's chance normalisation of the observation reads."""

    train: RunSplit
    val: RunSplit
    test: RunSplit

    def __init__(self, name: str, modalities: tuple[ModalitySpec, ...], num_classes: int,
                 optim_defaults: dict[str, Any] | None = None) -> None:
        """A subclass sets what :meth:`make_task` reads first: the splits are sized here for one
        run slot (the trainer's first :meth:`draw` resizes them to its K runs)."""
        empty = RunSplit([], torch.zeros(0, 0, dtype=torch.long))
        super().__init__(name, modalities, num_classes, empty, empty, empty,
                         optim_defaults={} if optim_defaults is None else optim_defaults)
        self._allocate(1)

    @abstractmethod
    def make_task(self, seed: int) -> Task:
        """The task a run seeded with ``seed`` trains on (a pure function of ``seed``)."""

    def draw(self, runs: Sequence[int], seeds: Sequence[int], num_runs: int) -> None:
        """Put a fresh task into each slot of ``runs`` (its run's ``seeds[i]``)."""
        if self.train.labels.shape[0] != num_runs:
            self._allocate(num_runs)
        for run, seed in zip(runs, seeds, strict=True):
            task = self.make_task(int(seed))
            splits = [self.run_view(s) for s in (self.train, self.val, self.test)]
            for split, (inputs, labels) in zip(splits, task.splits, strict=True):
                for j, x in enumerate(inputs):
                    split.inputs[j][run] = torch.from_numpy(x).to(split.inputs[j].device)
                split.labels[run] = torch.from_numpy(labels).to(split.labels.device)
            self.run_classes[run] = task.num_classes
            self.run_info[run] = task.info
            self.run_seeds[run] = int(seed)

    def _allocate(self, num_runs: int) -> None:
        task = self.make_task(0)  # shapes only
        device = self.train.labels.device
        made = []
        for inputs, labels in task.splits:
            made.append(RunSplit([torch.zeros(num_runs, *x.shape, device=device) for x in inputs],
                                 torch.zeros(num_runs, *labels.shape, dtype=torch.long, device=device)))
        self.train, self.val, self.test = made
        self.run_classes = np.full(num_runs, self.num_classes, np.int64)
        self.run_info: list[dict] = [{} for _ in range(num_runs)]
        self.run_seeds = [0] * num_runs  # what a checkpoint keeps: each slot's task is redrawn from its seed

    def classes_of_runs(self, num_runs: int) -> np.ndarray:
        return np.asarray(getattr(self, "run_classes", np.full(num_runs, self.num_classes)), np.int64)

    def run_view(self, split: Split) -> RunSplit:
        if not isinstance(split, RunSplit):
            raise TypeError(f"{self.name} holds one task per run: its splits are RunSplits, got {type(split).__name__}")
        return split

    def task_seeds(self) -> list[int]:
        return list(self.run_seeds)

    def to(self, device: torch.device | str) -> TaskFamilyDataset:
        out = self.__class__.__new__(self.__class__)
        out.__dict__.update(self.__dict__)
        out.train, out.val, out.test = (s.to(device) for s in (self.train, self.val, self.test))
        return out
