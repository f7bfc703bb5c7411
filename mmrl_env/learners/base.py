"""The learner contract: how the inner model trains on one batch and predicts.

Every learner (joint, ogm_ge, mla, boosting) returns the per-sample *unimodal logits* of
the batch it trained on, so monitors (DUS's CMD, BSS's measurer) need no extra forward
pass. Environments only talk to this interface, so a new learner slots in without
touching any env.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmrl_env.data.base import MultimodalDataset


@dataclass
class OptimConfig:
    """Inner optimisation. Defaults follow the audio-video reference (BSS paper §4.1, AUG paper §5.2.2)."""

    name: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 1e-4
    step_size: int = 70  # StepLR period, in epochs
    gamma: float = 0.1


@dataclass
class Batch:
    """Modality j's inputs/labels are the first n_j samples of one shared window.

    The first ``n_common`` rows are therefore the same samples in every modality: the
    fusion loss trains on those (DUS unimodal sampling; README "DUS: choices where the paper
    is not public"). With equal n_j this is an ordinary multimodal batch.
    """

    inputs: list[Tensor]
    labels: list[Tensor]
    n_common: int
    batch_size: int  # reference batch size B: per-modality losses are normalised by it


@dataclass
class StepOutput:
    loss: Tensor  # scalar, detached, on the device (no host sync)
    unimodal_logits: list[Tensor]  # detached z_j of modality j's batch, shape (n_j, K)


@dataclass
class Prediction:
    fused: Tensor  # (N, K) logits of the learner's inference rule
    unimodal: list[Tensor] = field(default_factory=list)  # (N, K) per modality
    multi: Tensor | None = None  # the fusion head's own logits z_multi, when the learner has one


def lr_schedule_state(state: dict[str, Any]) -> dict[str, Any]:
    """The LR schedule's entry of a learner's state dict: snapshots written before the attribute
    was renamed ``lr_schedule`` (from ``scheduler``) still resume."""
    return state["lr_schedule"] if "lr_schedule" in state else state["scheduler"]


def make_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}; use 'sgd' or 'adam'")


def batch_normalised_ce(logits: Tensor, labels: Tensor, batch_size: int) -> Tensor:
    """Cross-entropy summed over the batch and divided by the reference batch size B.

    With n_j = B this is the ordinary mean; a modality given more samples gets a
    proportionally larger learning signal, which is what DUS's sample quantity controls.
    """
    return nn.functional.cross_entropy(logits, labels, reduction="sum") / batch_size


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


@contextlib.contextmanager
def seeded_init(generator: torch.Generator) -> Iterator[None]:
    """Module init draws from the global RNG: fork it, seeded from our private generator,
    so that construction is reproducible without touching the caller's RNG state."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last weights for the convolutions (faster cuDNN/Tensor Core kernels on CUDA):
    ``channels_last`` for 2-D, ``channels_last_3d`` for 3-D ones (video encoders); a model-wide
    ``channels_last`` would fail on 5-D weights. Other layers are untouched."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.to(memory_format=torch.channels_last)
        elif isinstance(module, nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)
    return model


class Learner(ABC):
    """Owns the inner model, its optimizer and LR schedule."""

    # The run's length, told by the trainer (``set_run_length``) so that period-like defaults
    # ("auto") scale with the run; None for a learner used outside a trainer.
    run_epochs: int | None = None
    iterations_per_epoch: int | None = None

    def __init__(
        self, dataset: MultimodalDataset, optim: OptimConfig, device: torch.device, generator: torch.Generator
    ) -> None:
        self.dataset = dataset
        self.num_classes = dataset.num_classes
        self.optim_cfg = optim
        self.device = device
        self.generator = generator
        self.amp = device.type == "cuda"
        with seeded_init(generator):
            self.model = self.build_model().to(device)
        if device.type == "cuda":
            to_channels_last(self.model)
        self.optimizer = make_optimizer(self.model.parameters(), optim)
        self.lr_schedule = torch.optim.lr_scheduler.StepLR(self.optimizer, optim.step_size, optim.gamma)

    def set_training(self, mode: bool) -> None:
        """``model.train(mode)`` only when the mode changes: it walks every submodule, which
        costs a few percent of a small model's step if done on every iteration."""
        if self.model.training != mode:
            self.model.train(mode)

    def autocast(self) -> torch.autocast:
        """bf16 autocast on CUDA, a no-op on CPU."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    @abstractmethod
    def build_model(self) -> nn.Module: ...

    @abstractmethod
    def train_step(self, batch: Batch) -> StepOutput: ...

    @abstractmethod
    def predict(self, inputs: list[Tensor]) -> Prediction: ...

    def set_run_length(self, epochs: int, iterations_per_epoch: int) -> None:
        """The trainer's run length: resolves "auto" periods and warns about periods longer than the run."""
        self.run_epochs, self.iterations_per_epoch = int(epochs), int(iterations_per_epoch)

    def on_epoch_end(self, epoch: int) -> None:
        """Called after every full epoch of iterations (LR schedule; ACA for boosting)."""
        self.lr_schedule.step()

    def info(self) -> dict[str, Any]:
        """Learner-specific quantities for the env's ``info`` (classifier counts, ω, ...)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "lr_schedule": self.lr_schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(lr_schedule_state(state))
