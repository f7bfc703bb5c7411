"""What every learner shares: its settings, and the housekeeping of K runs trained at once.

A learner trains K independent inner runs (run k = one inner run with its own seed: its own
model, optimizer state, LR schedule and learner state) as stacked tensors; K = 1 is one run
(``gym.make``). Each learner (joint, ogm_ge, mla, boosting) writes its math once, for one run,
and maps it over the runs with :meth:`StackedLearner.map_runs` (``vmap``, or a per-run loop:
:mod:`mmrl_env.engine.runs`). Its ``train_step`` returns the per-sample *unimodal logits* of
the batch it trained on, so monitors (DUS's CMD, BSS's measurer) need no extra forward pass.
Environments only talk to the trainer, so a new learner slots in without touching any env.

Parameter groups. ``torch.optim`` skips a parameter whose gradient is ``None`` (no path to the
loss): no weight decay, no momentum. Which parameters those are depends on the learner (OGM-GE's
published variant never trains the auxiliary heads; MLA steps encoder j and the shared head per
modality; a boosting classifier starts stepping when it is added) and, per run, on the batch (no
common row: no fusion gradient). A functional gradient gives every parameter a value (zeros where
there is no path), so a learner names those groups explicitly: :class:`GroupOptimizer` is one
:class:`~mmrl_env.engine.optim.StackedOptimizer` per contiguous column range of the flat (K, P)
parameters that the group covers, each stepped with its own per-run gate. Each range keeps its
own state and step count, as ``torch.optim`` keeps them per parameter.

:class:`StackedLearner` holds the housekeeping (the :class:`~mmrl_env.engine.stack.RunStack`,
the per-run StepLR, BatchNorm running statistics, per-run epoch counters, slot resets,
checkpoints) so the learner modules hold only their math.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from mmrl_env.data.base import MultimodalDataset
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.batchnorm import update_running_stats
from mmrl_env.engine.optim import OptimConfig, StackedOptimizer, StackedStepLR
from mmrl_env.engine.runs import RunMap
from mmrl_env.engine.stack import RunStack


def auto_period(value: int | str, epochs: int | None, fraction: float, fallback: int, what: str) -> int:
    """A period in epochs: ``"auto"`` is ``fraction`` of the run (at least 1), or ``fallback`` (the
    paper's value) while the run length is unknown; a fixed period longer than the run warns,
    since it would never act."""
    if value == "auto":
        return fallback if epochs is None else max(1, round(fraction * epochs))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive number of epochs or 'auto', got {value!r}")
    if epochs is not None and value > epochs:
        warnings.warn(f"{what}={value} is longer than the run ({epochs} epochs): it never acts; "
                      f"use {what}='auto' ({fraction:g} of the run) or a smaller value", stacklevel=3)
    return value


def column_ranges(stack: RunStack, keep: Callable[[str], bool]) -> list[tuple[int, int]]:
    """The flat columns of the parameters whose name satisfies ``keep``, merged into contiguous ranges."""
    ranges: list[tuple[int, int]] = []
    for name, (start, end) in stack.columns.items():
        if keep(name):
            if ranges and ranges[-1][1] == start:
                ranges[-1] = (ranges[-1][0], end)
            else:
                ranges.append((start, end))
    return ranges


class GroupOptimizer:
    """SGD/Adam over some column ranges of the flat (K, P) parameters, gated per run."""

    def __init__(self, flat: Tensor, ranges: Sequence[tuple[int, int]], cfg: OptimConfig) -> None:
        if not ranges:
            raise ValueError("an optimizer group needs at least one parameter")
        self.ranges = list(ranges)
        self.parts = [StackedOptimizer(flat[:, a:b], cfg) for a, b in self.ranges]

    def step(self, flat: Tensor, grads: Tensor, lr: Tensor, gate: Tensor) -> None:
        """Update the group's columns of ``flat`` in place for the runs where ``gate`` (K,) is true."""
        for (a, b), opt in zip(self.ranges, self.parts, strict=True):
            opt.step(flat[:, a:b], grads[:, a:b], lr, gate)

    def reset_runs(self, runs: Tensor) -> None:
        for opt in self.parts:
            opt.reset_runs(runs)

    def state_dict(self) -> list[dict[str, Any]]:
        return [opt.state_dict() for opt in self.parts]

    def load_state_dict(self, state: list[dict[str, Any]]) -> None:
        for opt, s in zip(self.parts, state, strict=True):
            opt.load_state_dict(s)


class StackedLearner:
    """K runs of one learner: stacked model, per-run StepLR and epoch counters, named
    optimizer groups. Subclasses build the groups, the step and the prediction; they extend
    ``_reset_state`` / ``_extra_state`` / ``_load_extra_state`` for their own per-run state.

    Every learner's ``__init__`` takes ``(dataset, optim, device, generators)`` (one private
    generator per run) and then its own keyword arguments, which ``check_learner`` validates."""

    # one run's prediction ``(flat, buffers, inputs, *extra)``, which ``_predict_fn`` maps over the runs
    _forward: Callable[..., Any]

    def train_step(self, batch: VectorBatch) -> VectorStepOutput:
        """One update of every run on its rows of ``batch``; the step's loss and unimodal logits."""
        raise NotImplementedError(f"{type(self).__name__} defines no train_step")

    def predict(self, inputs: list[Tensor], per_run: bool = False) -> VectorPrediction:
        """Every run's logits on ``inputs``: shared (N, ...) tensors, or (K, N, ...) with ``per_run``."""
        raise NotImplementedError(f"{type(self).__name__} defines no predict")

    def __init__(self, build: Callable[[], nn.Module], dataset: MultimodalDataset, optim: OptimConfig,
                 device: torch.device, generators: Sequence[torch.Generator]) -> None:
        self.dataset, self.optim_cfg, self.device = dataset, optim, device
        self.amp = device.type == "cuda"  # bf16 autocast on CUDA
        self.stack = RunStack(build, generators, device)
        self.lr_schedule = StackedStepLR(len(generators), optim, device)
        self.groups: dict[str, GroupOptimizer] = {}
        self.epoch = torch.zeros(len(generators), dtype=torch.long)  # completed epochs per run (host)
        # the trainer's run length (``set_run_length``), for "auto" periods; None outside a trainer
        self.run_epochs: int | None = None
        self.iterations_per_epoch: int | None = None
        self._predict_fns: dict[bool, Callable[..., Any]] = {}
        self.vectorize = True

    def set_vectorize(self, vectorize: bool, channels_last: bool | None = None) -> None:
        """Batched (``vmap``) or per-run loop steps from now on (:mod:`~mmrl_env.engine.runs`); the
        loop also trims each run's padding rows before the encoders and, with ``channels_last``
        (default: in the loop on CUDA), runs the convolutions channels-last
        (:mod:`~mmrl_env.engine.stack`)."""
        self.vectorize = bool(vectorize)
        template: Any = self.stack.template  # the learner's own network class, which has ``trim_rows``
        template.trim_rows = not self.vectorize
        if channels_last is None:
            channels_last = not self.vectorize and self.device.type == "cuda"
        if channels_last and self.vectorize:
            raise ValueError("channels_last works on the per-run loop only (vectorize=False): it breaks vmap")
        self.stack.channels_last = bool(channels_last)

    def map_runs(self, fn: Callable[..., Any], in_dims: Sequence[int | None]) -> RunMap:
        """``fn`` (one run's computation) over the K runs, batched or looped per ``vectorize``."""
        return RunMap(fn, in_dims, self)

    @property
    def num_runs(self) -> int:
        return self.stack.num_runs

    def add_group(self, name: str, keep: Callable[[str], bool]) -> GroupOptimizer:
        """An optimizer group over the parameters whose name satisfies ``keep``."""
        self.groups[name] = GroupOptimizer(self.stack.flat, column_ranges(self.stack, keep), self.optim_cfg)
        return self.groups[name]

    def set_run_length(self, epochs: int, iterations_per_epoch: int) -> None:
        """The trainer's run length: resolves "auto" periods and warns about periods longer than the run."""
        self.run_epochs, self.iterations_per_epoch = int(epochs), int(iterations_per_epoch)

    def _set_training(self, mode: bool) -> None:
        """``train(mode)`` only when the mode changes: it walks every submodule, which costs a
        few percent of a small model's step if done on every iteration."""
        if self.stack.template.training != mode:
            self.stack.template.train(mode)

    def _autocast(self) -> torch.autocast:
        """bf16 autocast on CUDA, a no-op on CPU."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _run_model(self, flat: Tensor, buffers: dict[str, Tensor], *args: Any) -> Any:
        """One run's model on ``args`` from its (P,) parameter row, under autocast: the forward
        every learner's ``_loss`` and ``_forward`` share (mapped over the runs by ``map_runs``)."""
        with self._autocast():
            return functional_call(self.stack.template, (self.stack.unflatten(flat), buffers), args)

    def _predict_fn(self, per_run: bool, *extra_dims: int | None) -> Callable[..., Any]:
        """The subclass's ``_forward(flat, buffers, inputs, *extra)`` mapped over the runs,
        with ``inputs`` shared or per run (``extra_dims``: the batching of the further arguments); cached."""
        if per_run not in self._predict_fns:
            self._predict_fns[per_run] = self.map_runs(self._forward, (0, 0, 0 if per_run else None, *extra_dims))
        return self._predict_fns[per_run]

    def step_group(self, name: str, grads: Tensor, gate: Tensor) -> None:
        self.groups[name].step(self.stack.flat, grads, self.lr_schedule.lr, gate)

    def update_batchnorm(self, stats: dict[str, Any], active: Tensor) -> None:
        """Fold the step's BatchNorm batch statistics into the running buffers (layers that ran)."""
        for name, momentum in self.stack.bn_momenta.items():
            if name in stats:
                update_running_stats(self.stack.buffers, name, momentum, stats[name], active)

    def reset_runs(self, runs: Sequence[int], generators: Sequence[torch.Generator]) -> None:
        """Fresh runs in slots ``runs``, built from their generators as at construction."""
        for run, gen in zip(runs, generators, strict=True):
            self.stack.rebuild(run, gen)
        idx = torch.as_tensor(list(runs), dtype=torch.long, device=self.device)
        for group in self.groups.values():
            group.reset_runs(idx)
        self.lr_schedule.reset_runs(idx)
        self.epoch[list(runs)] = 0
        self._reset_state(list(runs), generators)

    def _reset_state(self, runs: list[int], generators: Sequence[torch.Generator]) -> None:
        """Subclasses: reset their own per-run state (after the model is rebuilt)."""

    def on_epoch_end(self, runs: Tensor) -> None:
        """An epoch ended for the runs where ``runs`` (K,) bool is true: their StepLR steps."""
        self.lr_schedule.step(runs)
        self.epoch += runs.cpu().long()

    def run_info(self, run: int) -> dict[str, Any]:
        """Learner-specific quantities of one run for the env's ``info`` (classifier counts, ω, ...)."""
        return {}

    def run_state_dict(self, run: int) -> dict[str, Tensor]:
        """Run ``run``'s weights as its model's ``state_dict`` (e.g. to compare or export)."""
        return self.stack.run_state_dict(run)

    def state_dict(self) -> dict[str, Any]:
        return {"params": self.stack.flat.clone(), "buffers": {k: v.clone() for k, v in self.stack.buffers.items()},
                "groups": {k: g.state_dict() for k, g in self.groups.items()},
                "lr_schedule": self.lr_schedule.state_dict(), "epoch": self.epoch.clone(), **self._extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.stack.flat.copy_(state["params"])
            for k, v in state["buffers"].items():
                self.stack.buffers[k].copy_(v)
        for k, g in self.groups.items():
            g.load_state_dict(state["groups"][k])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        self.epoch.copy_(state["epoch"])
        self._load_extra_state(state)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Subclasses: restore what ``_extra_state`` saved."""
