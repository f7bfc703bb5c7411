"""BSS as an environment: the action sets the curriculum proportion λ of one epoch.

Balance-aware sequence sampling (the BSS paper in ``shared/papers``: measurer eqs. 4–6,
pacing eq. 7, curricula eqs. 8–11); our choices are in docs/design.md ("BSS: choices").
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import torch

from mmrl_env.envs.base import MultimodalTrainingEnv
from mmrl_env.envs.layout import ObservationExtra
from mmrl_env.envs.vector import Infos, MultimodalTrainingVectorEnv
from mmrl_env.kwargs import unknown_kwargs_message
from mmrl_env.monitors.balance import BalanceMeasurement, BalanceMeasurer
from mmrl_env.samplers.curriculum import CURRICULA, SAMPLINGS, ProportionMap, make_curriculum

MEASURE_MOMENTS = ("start", "warmup")


class BSSVectorEnv(MultimodalTrainingVectorEnv[ProportionMap]):
    """Balance-aware sequence sampling over K inner runs.

    Action per run: Box[−1, 1] of shape (1,), mapped linearly to λ ∈ [λ_min, 1]. Step: ONE
    epoch over ⌈λ·n⌉ training samples chosen by the run's curriculum; episode: ``epochs``
    steps. Runs with different λ (epoch lengths) share one batched step; a run whose epoch
    is over rests (all-zero mask) while the longer ones finish.

    Extra kwargs (beyond the common ones):
    lambda_min: smallest proportion (default 0.1 = the paper's λ0).
    curriculum: ``rank`` (shuffle of the top-⌈λ·n⌉ by balance score, eq. 8) or ``learned``
        (⌈λ·n⌉ draws from p = softmax(EMA score), eqs. 9–11). The bss-l policy needs
        ``learned``; bss-h and full need ``rank``.
    curriculum_kwargs: the learned curriculum's ``beta`` (EMA weight, eq. 9, default 0.6) and
        ``sampling`` (``paper`` draws with replacement; ``authors`` as the authors' code).
    measure: when the first balance score is taken at reset: ``start`` (untrained model, as
        the authors' code) or ``warmup`` (after one full-data epoch, which is not a step).
    remeasure_every: re-measure after every E epochs (default 5; None = measure once).
    measurer_kwargs: ``{"alpha": 0.2, "mode": "eval"}``: α of the measurer's loss (eq. 5); ``mode``
        ``eval`` (BatchNorm running stats) or ``train`` (batch stats of chunks of B, as the
        authors' code; :class:`~mmrl_env.monitors.balance.BalanceMeasurer`).
    balance_obs: append [mean prediction similarity of the training set at the last
        measurement, mean balance score of the last epoch's sequence] to the observation.
    """

    method = "BSS"
    REMOVED_KWARGS: ClassVar[dict[str, str]] = {
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
                                   ("measurer_kwargs", measurer_kwargs, ("alpha", "mode"))):
            message = unknown_kwargs_message(given or {}, valid, name)
            if message:
                raise ValueError(message)
        self.curriculum_settings = {"beta": 0.6, "sampling": "paper", **(curriculum_kwargs or {})}
        if self.curriculum_settings["sampling"] not in SAMPLINGS:
            raise ValueError(f"unknown sampling {self.curriculum_settings['sampling']!r}; "
                             f"choose one of {', '.join(SAMPLINGS)}")
        extras = (ObservationExtra("balance", (0.0, -1.0), (1.0, 1.0)),) if balance_obs else ()
        super().__init__(lambda m, b: ProportionMap(lambda_min), extras,
                         {"curriculum": curriculum, "remeasure_every": remeasure_every}, **kwargs)
        self.measure, self.remeasure_every = measure, remeasure_every
        self.balance_obs = balance_obs
        self.measurer = BalanceMeasurer(**{"alpha": 0.2, **(measurer_kwargs or {})})
        self.curriculum_kind = curriculum
        k = self.num_envs
        self.measurements: list[BalanceMeasurement | None] = [None] * k
        self.curricula = [make_curriculum(curriculum, **self.curriculum_settings) for _ in range(k)]
        self.epochs = self.inner_run.cfg.epochs
        self._epochs_done = np.zeros(k, np.int64)
        self._measured = np.zeros(k, np.int64)
        self._subset_info: list[dict[str, Any]] = [{} for _ in range(k)]

    # --- MultimodalTrainingVectorEnv hooks -----------------------------------------------
    def _progress(self) -> np.ndarray:
        return self._epochs_done / self.epochs

    def _finished(self) -> np.ndarray:
        return self._epochs_done >= self.epochs

    def _on_reset(self, runs: list[int]) -> None:
        self._epochs_done[runs], self._measured[runs] = 0, 0
        n = len(self.inner_run.dataset.train)
        for k in runs:
            self.measurements[k] = None
            self.curricula[k] = make_curriculum(self.curriculum_kind, **self.curriculum_settings)
        if self.measure == "warmup":  # one full-data epoch per run being reset; the others rest
            orders = [torch.randperm(n, generator=self.inner_run.generators[k]) if k in runs else None
                      for k in range(self.num_envs)]
            self.inner_run.train_epoch(orders, hooks=(self._observe_batch,))
        self._measure(runs)
        for k in runs:
            self._subset_info[k] = self._describe(k, torch.arange(n), 1.0)

    def _advance(self, actions: np.ndarray, stepping: np.ndarray) -> tuple[torch.Tensor, Infos]:
        proportions = [self.action_map.proportion(a) for a in actions]
        orders = [self.curricula[k].order(proportions[k], self.inner_run.generators[k]) if stepping[k] else None
                  for k in range(self.num_envs)]
        loss = self.inner_run.train_epoch(orders, hooks=(self._observe_batch,))
        self._epochs_done[stepping] += 1
        for k, order in enumerate(orders):  # scored by the measurement that chose the sequence
            if order is not None:
                self._subset_info[k] = self._describe(k, order, proportions[k])
        due = stepping & ~self._finished()  # a score after the last epoch would go unused
        if self.remeasure_every is None:
            due[:] = False
        else:
            due &= self._epochs_done % self.remeasure_every == 0
        if due.any():
            self._measure(np.flatnonzero(due).tolist())
        return loss, [{"measured": bool(due[k])} for k in range(self.num_envs)]

    def _extra_values(self, run: int) -> dict[str, np.ndarray]:
        values = super()._extra_values(run)
        if self.balance_obs:
            sim = float(self._measurement(run).similarity.mean().item())
            values["balance"] = np.array([sim, self._subset_info[run]["balance"]["score"]], np.float32)
        return values

    def _info(self, run: int, s_hat: np.ndarray, method_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return super()._info(run, s_hat, {**self._subset_info[run], "measurements": int(self._measured[run]),
                                   **method_info}, **extra)

    # --- checkpoints ----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The base state plus each run's curriculum: measurement, curriculum state, counters."""
        measurements = [None if m is None else {"score": m.score, "similarity": m.similarity, "loss": m.loss}
                        for m in self.measurements]
        return {**super().get_state(), "bss": copy.deepcopy({
            "measurements": measurements, "curricula": [c.state_dict() for c in self.curricula],
            "epochs_done": self._epochs_done.tolist(), "measured": self._measured.tolist(),
            "subset_info": self._subset_info})}

    def _identity(self) -> dict[str, Any]:
        return {**super()._identity(), "curriculum": self.curriculum_kind}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        bss = copy.deepcopy(state["bss"])
        self.measurements = [None if m is None else BalanceMeasurement(m["score"], m["similarity"], m["loss"])
                             for m in bss["measurements"]]
        self.curricula = [make_curriculum(self.curriculum_kind, **self.curriculum_settings)
                          for _ in range(self.num_envs)]
        for curriculum, s in zip(self.curricula, bss["curricula"], strict=True):
            curriculum.load_state_dict(s)
        self._epochs_done = np.array(bss["epochs_done"], np.int64)
        self._measured = np.array(bss["measured"], np.int64)
        self._subset_info = bss["subset_info"]

    # --- helpers --------------------------------------------------------------------------
    def _measure(self, runs: list[int]) -> None:
        """Measure ``runs`` (one batched prediction pass scores every run; the others are kept)."""
        measured = self.measurer.measure_runs(self.inner_run)
        for k in runs:
            self.measurements[k] = measured[k]
            self.curricula[k].update(measured[k].score)
            self._measured[k] += 1

    def _describe(self, run: int, order: torch.Tensor, proportion: float) -> dict[str, Any]:
        """What a person inspects about an epoch's sequence (means of its raw measures)."""
        return {"lambda": proportion, "subset_size": int(order.numel()), "subset_unique": int(order.unique().numel()),
                "balance": self._measurement(run).subset_means(order)}

    def _measurement(self, run: int) -> BalanceMeasurement:
        """Run ``run``'s last measurement (every reset measures, so a started run has one)."""
        measurement = self.measurements[run]
        if measurement is None:
            raise RuntimeError(f"run {run} has not been measured: call reset() first")
        return measurement


class BSSEnv(MultimodalTrainingEnv):
    """One BSS inner run: the K = 1 view of :class:`BSSVectorEnv` (same kwargs, minus K)."""

    vector_class = BSSVectorEnv
    runs: BSSVectorEnv

    @property
    def measurement(self) -> BalanceMeasurement | None:
        return self.runs.measurements[0]

    @property
    def curriculum(self) -> Any:
        return self.runs.curricula[0]

    @property
    def measurer(self) -> BalanceMeasurer:
        return self.runs.measurer

    @property
    def epochs(self) -> int:
        return self.runs.epochs
