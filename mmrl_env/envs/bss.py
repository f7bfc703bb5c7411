"""BSS as an environment: the action sets the curriculum proportion λ of one epoch (SPEC §4, §6)."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mmrl_env.envs.base import MultimodalTrainingEnv, append_extra
from mmrl_env.monitors.balance import BalanceMeasurement, BalanceMeasurer
from mmrl_env.samplers.curriculum import SAMPLINGS, SCHEDULERS, ProportionMap, make_scheduler

MEASURE_MOMENTS = ("start", "warmup")


class BSSEnv(MultimodalTrainingEnv):
    """Balance-aware sequence sampling.

    Action: Box[−1, 1] of shape (1,), mapped linearly to λ ∈ [λ_min, 1]. Step: ONE epoch over
    ⌈λ·n⌉ training samples chosen by the scheduler; episode: ``epochs`` steps.

    Extra kwargs (beyond :class:`MultimodalTrainingEnv`):
    lambda_min: smallest proportion (default 0.1 = the paper's λ0).
    scheduler: ``rank`` (shuffle of the top-⌈λ·n⌉ by balance score, eq. 8) or ``learned``
        (⌈λ·n⌉ draws from p = softmax(EMA score), eqs. 9–11). The bss-l policy needs
        ``learned``; bss-h and full need ``rank``.
    measure: when the first balance score is taken at reset: ``start`` (untrained model, as
        the authors' code) or ``warmup`` (after one full-data epoch, which is not a step).
    remeasure_every: re-measure after every E epochs (default 5; None = measure once).
    beta, sampling: the learned scheduler's EMA weight (eq. 9) and draw (``paper``/``authors``).
    measure_alpha: α of the measurer's loss (eq. 5).
    balance_obs: append [mean prediction similarity of the training set at the last
        measurement, mean balance score of the last epoch's sequence] to the observation.
    """

    def __init__(self, lambda_min: float = 0.1, scheduler: str = "rank", measure: str = "start",
                 remeasure_every: int | None = 5, beta: float = 0.6, sampling: str = "paper",
                 measure_alpha: float = 0.2, balance_obs: bool = False, **kwargs: Any) -> None:
        if measure not in MEASURE_MOMENTS:
            raise ValueError(f"unknown measure {measure!r}; choose one of {', '.join(MEASURE_MOMENTS)}")
        if remeasure_every is not None and remeasure_every < 1:
            raise ValueError(f"remeasure_every must be a positive number of epochs or None, got {remeasure_every}")
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}; choose one of {', '.join(SAMPLINGS)}")
        self.proportions = ProportionMap(lambda_min)
        self.measure, self.remeasure_every = measure, remeasure_every
        self.beta, self.sampling = beta, sampling
        self.balance_obs = balance_obs
        self.measurer = BalanceMeasurer(measure_alpha)
        self.measurement: BalanceMeasurement | None = None
        self._set_scheduler(scheduler)
        super().__init__(**kwargs)
        self.epochs = self.trainer.cfg.epochs
        self._epochs_done, self._measurements = 0, 0
        self._subset_info: dict[str, Any] = {}

    # --- scheduler ------------------------------------------------------------------------
    def _set_scheduler(self, kind: str) -> None:
        """A fresh scheduler of ``kind``, started from the latest measurement (EMA restarts)."""
        if kind not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {kind!r}; choose one of {', '.join(SCHEDULERS)}")
        self.scheduler_kind = kind
        self.scheduler = make_scheduler(kind, self.beta, self.sampling)
        if self.measurement is not None:
            self.scheduler.update(self.measurement.score)

    # --- MultimodalTrainingEnv hooks ------------------------------------------------------
    def _make_action_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)

    def _neutral_action(self) -> np.ndarray:
        """λ = 1: the whole training set, i.e. plain joint training."""
        return np.ones(1, np.float32)

    def _progress(self) -> float:
        return self._epochs_done / self.epochs

    def _finished(self) -> bool:
        return self._epochs_done >= self.epochs

    def _on_reset(self) -> None:
        self._epochs_done, self._measurements = 0, 0
        self.measurement = None
        self._set_scheduler(self.scheduler_kind)
        n = len(self.trainer.dataset.train)
        if self.measure == "warmup":
            self.trainer.train_epoch(torch.randperm(n, generator=self.trainer.generator), hooks=(self._observe_batch,))
        self._measure()
        self._subset_info = self._describe(torch.arange(n), 1.0)

    def _advance(self, action: np.ndarray) -> dict[str, Any]:
        lam = self.proportions.proportion(action)
        order = self.scheduler.order(lam, self.trainer.generator)
        loss = self.trainer.train_epoch(order, hooks=(self._observe_batch,))
        self._epochs_done += 1
        self._subset_info = self._describe(order, lam)  # scored by the measurement that chose it
        measured = (self.remeasure_every is not None and self._epochs_done % self.remeasure_every == 0
                    and not self._finished())  # a score after the last epoch would go unused
        if measured:
            self._measure()
        return {"measured": measured, "train_loss": loss.item()}

    def _extra_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        base = super()._extra_bounds()
        return append_extra(base, [0.0, -1.0], [1.0, 1.0]) if self.balance_obs else base

    def _extra_observation(self) -> np.ndarray:
        base = super()._extra_observation()
        if not self.balance_obs:
            return base
        sim = float(self.measurement.similarity.mean().item())
        return np.concatenate([base, np.array([sim, self._subset_info["balance"]["score"]], np.float32)])

    def _info(self, step_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return super()._info({**self._subset_info, "measurements": self._measurements, **step_info}, **extra)

    # --- checkpoints ----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The base state plus the curriculum: measurement, scheduler, epoch counters."""
        m = self.measurement
        return {**super().get_state(), "bss": copy.deepcopy({
            "measurement": None if m is None else {"score": m.score, "similarity": m.similarity, "loss": m.loss},
            "scheduler_kind": self.scheduler_kind, "scheduler": self.scheduler.state_dict(),
            "epochs_done": self._epochs_done, "measurements": self._measurements, "subset_info": self._subset_info})}

    def _identity(self) -> dict[str, Any]:
        return {**super()._identity(), "scheduler": self.scheduler_kind}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        bss = copy.deepcopy(state["bss"])
        m = bss["measurement"]
        self.measurement = None if m is None else BalanceMeasurement(m["score"], m["similarity"], m["loss"])
        self.scheduler_kind = bss["scheduler_kind"]
        self.scheduler = make_scheduler(self.scheduler_kind, self.beta, self.sampling)
        self.scheduler.load_state_dict(bss["scheduler"])
        self._epochs_done, self._measurements = bss["epochs_done"], bss["measurements"]
        self._subset_info = bss["subset_info"]

    # --- helpers --------------------------------------------------------------------------

    def _measure(self) -> None:
        self.measurement = self.measurer.measure(self.trainer)
        self.scheduler.update(self.measurement.score)
        self._measurements += 1

    def _describe(self, order: torch.Tensor, lam: float) -> dict[str, Any]:
        """What a person inspects about an epoch's sequence (means of its raw measures)."""
        return {"lambda": lam, "subset_size": int(order.numel()), "subset_unique": int(order.unique().numel()),
                "balance": self.measurement.subset_means(order)}
