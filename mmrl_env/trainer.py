"""The inner trainer: data on the device, a learner, the index stream, its own RNG.

Environments drive it in decision intervals (``train``); a plain loop can drive it the
same way (``bench/``, ``training/train_mml.py``). Every random draw comes from the
trainer's private ``torch.Generator`` (SB3 seeds torch globally; we must not depend on it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from mmrl_env.data import load_dataset
from mmrl_env.data.base import MultimodalDataset, Split
from mmrl_env.kwargs import unknown_kwargs_message
from mmrl_env.learners import build_learner, check_learner
from mmrl_env.learners.base import Batch, OptimConfig, Prediction, StepOutput
from mmrl_env.metrics import prediction_metrics
from mmrl_env.models.encoders import check_encoder
from mmrl_env.samplers.stream import ShuffledStream

Hook = Callable[[Batch, StepOutput], None]


def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TrainerConfig:
    """The inner run: batch size B, length in epochs, learner and optimisation."""

    batch_size: int = 64
    epochs: int = 8
    learner: str = "joint"
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval_batch_size: int = 1024


def trainer_setup(dataset: str, dataset_kwargs: dict[str, Any] | None = None, learner: str = "joint",
                  learner_kwargs: dict[str, Any] | None = None, batch_size: int = 64, epochs: int = 8,
                  optim: dict[str, Any] | None = None) -> tuple[MultimodalDataset, TrainerConfig]:
    """Load a registered dataset and configure a run on it: the one place where a dataset's
    recommended optimisation (``optim_defaults``) meets the caller's overrides (``optim``)."""
    message = unknown_kwargs_message(optim or {}, OptimConfig.__dataclass_fields__, "optim setting(s)")
    if message:
        raise ValueError(message)
    data = load_dataset(dataset, **(dataset_kwargs or {}))
    cfg = TrainerConfig(batch_size=batch_size, epochs=epochs, learner=learner,
                        learner_kwargs=dict(learner_kwargs or {}),
                        optim=OptimConfig(**{**data.optim_defaults, **(optim or {})}))
    return data, cfg


class InnerTrainer:
    """One inner training run; ``reset`` starts a new one (fresh model, fresh order)."""

    def __init__(self, dataset: MultimodalDataset, cfg: TrainerConfig, device: str | torch.device = "auto") -> None:
        # fail at construction, not at the first reset; old kwarg names warn once, here
        cfg = replace(cfg, learner_kwargs=check_learner(cfg.learner, cfg.learner_kwargs))
        for spec in dataset.modalities:
            check_encoder(spec.encoder, **spec.encoder_kwargs)
        self.cfg = cfg
        self.device = resolve_device(device)
        self.dataset = dataset.to(self.device)
        self.iterations_per_epoch = max(1, math.ceil(len(self.dataset.train) / cfg.batch_size))
        self.total_iterations = cfg.epochs * self.iterations_per_epoch
        self.generator = torch.Generator()
        self.learner: Any = None
        self.iteration = 0
        self.epoch = 0  # completed epochs (a full pass, or one curriculum epoch via train_epoch)

    @property
    def done(self) -> bool:
        """Every iteration of the run is spent (DUS counts iterations; BSS counts epochs itself)."""
        return self.iteration >= self.total_iterations

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(seed)
        self.learner = build_learner(self.cfg.learner, self.dataset, self.cfg.optim, self.device,
                                     self.generator, **self.cfg.learner_kwargs)
        self.learner.set_run_length(self.cfg.epochs, self.iterations_per_epoch)
        self.stream = ShuffledStream(len(self.dataset.train), self.generator, self.device)
        self.iteration = 0
        self.epoch = 0

    def state_dict(self) -> dict[str, Any]:
        """The run so far: learner, index stream, counters and the private generator's state."""
        if self.learner is None:
            return {"started": False}
        return {"started": True, "learner": self.learner.state_dict(), "stream": self.stream.state_dict(),
                "iteration": self.iteration, "epoch": self.epoch, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild a learner, load the saved run into it; the generator is restored last, since
        building (and boosting's re-added classifiers) draws from it."""
        if not state["started"]:
            self.learner, self.iteration, self.epoch = None, 0, 0
            return
        self.reset(0)
        self.learner.load_state_dict(state["learner"])
        self.stream.load_state_dict(state["stream"])
        self.iteration, self.epoch = int(state["iteration"]), int(state["epoch"])
        self.generator.set_state(state["generator"])

    def make_batch(self, window: Tensor, sizes: list[int]) -> Batch:
        split = self.dataset.train
        return Batch(
            inputs=[split.gather(j, window[:n], train=True) for j, n in enumerate(sizes)],
            labels=[split.gather_labels(window[:n]) for n in sizes],
            n_common=min(sizes),
            batch_size=self.cfg.batch_size,
        )

    def _update(self, window: Tensor, sizes: list[int], hooks: tuple[Hook, ...]) -> Tensor:
        batch = self.make_batch(window, sizes)
        out = self.learner.train_step(batch)
        for hook in hooks:
            hook(batch, out)
        self.iteration += 1
        return out.loss

    def _end_epoch(self) -> None:
        self.learner.on_epoch_end(self.epoch)
        self.epoch += 1

    def train(self, iterations: int, sizes: list[int], hooks: tuple[Hook, ...] = ()) -> Tensor:
        """Run up to ``iterations`` updates from the shuffled stream (stops at the run's end).

        Modality j gets the first ``sizes[j]`` samples of each window; an epoch ends every
        ``iterations_per_epoch`` updates. Returns the mean loss over these iterations as a
        device tensor (no host sync here).
        """
        total = torch.zeros((), device=self.device)
        done = 0
        for _ in range(iterations):
            if self.done:
                break
            total = total + self._update(self.stream.next_window(max(sizes), self.cfg.batch_size), sizes, hooks)
            done += 1
            if self.iteration % self.iterations_per_epoch == 0:
                self._end_epoch()
        return total / max(done, 1)

    def train_epoch(self, order: Tensor, hooks: tuple[Hook, ...] = ()) -> Tensor:
        """One epoch over ``order`` (train-split indices, e.g. a curriculum subset) in batches
        of B for every modality, then the epoch-end hooks. Returns the mean loss (device)."""
        sizes = [self.cfg.batch_size] * self.dataset.num_modalities
        order = order.to(self.device)
        total = torch.zeros((), device=self.device)
        parts = order.split(self.cfg.batch_size)
        for part in parts:
            total = total + self._update(part, [part.numel()] * len(sizes), hooks)
        self._end_epoch()
        return total / max(len(parts), 1)

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Full metrics (acc, macro-F1, mAP) of the current model on a split, fused and per modality."""
        pred, y = self.predict(getattr(self.dataset, split))
        return prediction_metrics(pred.fused, pred.unimodal, y, self.dataset.modality_names)

    def predict(self, split: Split, idx: Tensor | None = None) -> tuple[Prediction, Tensor]:
        """Predictions of the current model on ``split`` (or its subset ``idx``), in chunks."""
        if idx is None:
            idx = torch.arange(len(split), device=self.device)
        chunks = [self.learner.predict([split.gather(j, part) for j in range(self.dataset.num_modalities)])
                  for part in idx.split(self.cfg.eval_batch_size)]
        fused = torch.cat([c.fused for c in chunks])
        uni = [torch.cat([c.unimodal[j] for c in chunks]) for j in range(self.dataset.num_modalities)]
        multi = None if chunks[0].multi is None else torch.cat([c.multi for c in chunks])
        return Prediction(fused, uni, multi), split.gather_labels(idx)
