"""BSS as an environment: the action sets the curriculum proportion λ of one epoch.

Balance-aware sequence sampling (the BSS paper in ``shared/papers``: measurer eqs. 4–6,
pacing eq. 7, curricula eqs. 8–11); our choices are in the README ("BSS: choices").
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch

from mmrl_env.envs.base import MultimodalTrainingEnv
from mmrl_env.envs.layout import ObservationExtra
from mmrl_env.kwargs import unknown_kwargs_message
from mmrl_env.monitors.balance import BalanceMeasurement, BalanceMeasurer
from mmrl_env.samplers.curriculum import CURRICULA, SAMPLINGS, ProportionMap, make_curriculum

MEASURE_MOMENTS = ("start", "warmup")


class BSSEnv(MultimodalTrainingEnv):
    """Balance-aware sequence sampling.

    Action: Box[−1, 1] of shape (1,), mapped linearly to λ ∈ [λ_min, 1]. Step: ONE epoch over
    ⌈λ·n⌉ training samples chosen by the curriculum; episode: ``epochs`` steps.

    Extra kwargs (beyond :class:`MultimodalTrainingEnv`):
    lambda_min: smallest proportion (default 0.1 = the paper's λ0).
    curriculum: ``rank`` (shuffle of the top-⌈λ·n⌉ by balance score, eq. 8) or ``learned``
        (⌈λ·n⌉ draws from p = softmax(EMA score), eqs. 9–11). The bss-l policy needs
        ``learned``; bss-h and full need ``rank``.
    curriculum_kwargs: the learned curriculum's ``beta`` (EMA weight, eq. 9, default 0.6) and
        ``sampling`` (``paper`` draws with replacement; ``authors`` as the authors' code).
    measure: when the first balance score is taken at reset: ``start`` (untrained model, as
        the authors' code) or ``warmup`` (after one full-data epoch, which is not a step).
    remeasure_every: re-measure after every E epochs (default 5; None = measure once).
    measurer_kwargs: ``{"alpha": 0.2}``, α of the measurer's loss (eq. 5).
    balance_obs: append [mean prediction similarity of the training set at the last
        measurement, mean balance score of the last epoch's sequence] to the observation.
    """

    method = "BSS"
    RENAMED_KWARGS: ClassVar[dict[str, str]] = {
        "scheduler": "curriculum", "beta": "curriculum_kwargs.beta", "sampling": "curriculum_kwargs.sampling",
        "measure_alpha": "measurer_kwargs.alpha"}

    def __init__(self, lambda_min: float = 0.1, curriculum: str = "rank",
                 curriculum_kwargs: dict[str, Any] | None = None, measure: str = "start",
                 remeasure_every: int | None = 5, measurer_kwargs: dict[str, Any] | None = None,
                 balance_obs: bool = False, **kwargs: Any) -> None:
        if measure not in MEASURE_MOMENTS:
            raise ValueError(f"unknown measure {measure!r}; choose one of {', '.join(MEASURE_MOMENTS)}")
        if remeasure_every is not None and remeasure_every < 1:
            raise ValueError(f"remeasure_every must be a positive number of epochs or None, got {remeasure_every}")
        if curriculum not in CURRICULA:
            raise ValueError(f"unknown curriculum {curriculum!r}; choose one of {', '.join(CURRICULA)}")
        for name, given, valid in (("curriculum_kwargs", curriculum_kwargs, ("beta", "sampling")),
                                   ("measurer_kwargs", measurer_kwargs, ("alpha",))):
            message = unknown_kwargs_message(given or {}, valid, name)
            if message:
                raise ValueError(message)
        self.curriculum_settings = {"beta": 0.6, "sampling": "paper", **(curriculum_kwargs or {})}
        if self.curriculum_settings["sampling"] not in SAMPLINGS:
            raise ValueError(f"unknown sampling {self.curriculum_settings['sampling']!r}; "
                             f"choose one of {', '.join(SAMPLINGS)}")
        super().__init__(**kwargs)
        self.measure, self.remeasure_every = measure, remeasure_every
        self.balance_obs = balance_obs
        self.measurer = BalanceMeasurer(**{"alpha": 0.2, **(measurer_kwargs or {})})
        self.measurement: BalanceMeasurement | None = None
        self.curriculum_kind = curriculum
        self.curriculum = self._new_curriculum()
        self.epochs = self.trainer.cfg.epochs
        self._epochs_done, self._measurements = 0, 0
        self._subset_info: dict[str, Any] = {}
        extras = (ObservationExtra("balance", (0.0, -1.0), (1.0, 1.0)),) if balance_obs else ()
        self.declare(ProportionMap(lambda_min), extras,
                     settings={"curriculum": curriculum, "remeasure_every": remeasure_every})

    def _new_curriculum(self) -> Any:
        """A fresh curriculum of the env's kind, started from the latest measurement (EMA restarts)."""
        curriculum = make_curriculum(self.curriculum_kind, **self.curriculum_settings)
        if self.measurement is not None:
            curriculum.update(self.measurement.score)
        return curriculum

    # --- MultimodalTrainingEnv hooks ------------------------------------------------------
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
        self.curriculum = self._new_curriculum()
        n = len(self.trainer.dataset.train)
        if self.measure == "warmup":
            self.trainer.train_epoch(torch.randperm(n, generator=self.trainer.generator), hooks=(self._observe_batch,))
        self._measure()
        self._subset_info = self._describe(torch.arange(n), 1.0)

    def _advance(self, action: np.ndarray) -> dict[str, Any]:
        proportion = self.action_map.proportion(action)
        order = self.curriculum.order(proportion, self.trainer.generator)
        loss = self.trainer.train_epoch(order, hooks=(self._observe_batch,))
        self._epochs_done += 1
        self._subset_info = self._describe(order, proportion)  # scored by the measurement that chose it
        measured = (self.remeasure_every is not None and self._epochs_done % self.remeasure_every == 0
                    and not self._finished())  # a score after the last epoch would go unused
        if measured:
            self._measure()
        return {"measured": measured, "train_loss": loss.item()}

    def _extra_values(self) -> dict[str, np.ndarray]:
        values = super()._extra_values()
        if self.balance_obs:
            sim = float(self.measurement.similarity.mean().item())
            values["balance"] = np.array([sim, self._subset_info["balance"]["score"]], np.float32)
        return values

    def _info(self, step_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return super()._info({**self._subset_info, "measurements": self._measurements, **step_info}, **extra)

    # --- checkpoints ----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The base state plus the curriculum: measurement, curriculum state, epoch counters."""
        m = self.measurement
        return {**super().get_state(), "bss": copy.deepcopy({
            "measurement": None if m is None else {"score": m.score, "similarity": m.similarity, "loss": m.loss},
            "curriculum_kind": self.curriculum_kind, "curriculum": self.curriculum.state_dict(),
            "epochs_done": self._epochs_done, "measurements": self._measurements, "subset_info": self._subset_info})}

    def _identity(self) -> dict[str, Any]:
        return {**super()._identity(), "curriculum": self.curriculum_kind}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        bss = copy.deepcopy(state["bss"])
        m = bss["measurement"]
        self.measurement = None if m is None else BalanceMeasurement(m["score"], m["similarity"], m["loss"])
        self.curriculum = make_curriculum(self.curriculum_kind, **self.curriculum_settings)
        self.curriculum.load_state_dict(bss["curriculum"])
        self._epochs_done, self._measurements = bss["epochs_done"], bss["measurements"]
        self._subset_info = bss["subset_info"]

    # --- helpers --------------------------------------------------------------------------
    def _measure(self) -> None:
        self.measurement = self.measurer.measure(self.trainer)
        self.curriculum.update(self.measurement.score)
        self._measurements += 1

    def _describe(self, order: torch.Tensor, proportion: float) -> dict[str, Any]:
        """What a person inspects about an epoch's sequence (means of its raw measures)."""
        return {"lambda": proportion, "subset_size": int(order.numel()), "subset_unique": int(order.unique().numel()),
                "balance": self.measurement.subset_means(order)}
