"""DUS as an environment: the action sets each modality's sample quantity n_j.

Data-aware unimodal sampling (the DUS paper's summary in ``shared/papers``); our choices
where the paper is not public are in docs/design.md ("DUS: choices").
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from mmrl_env.envs.base import MultimodalTrainingEnv
from mmrl_env.envs.vector import Infos, MultimodalTrainingVectorEnv
from mmrl_env.samplers.unimodal import BUDGET_MODES, QuantityMap


class DUSVectorEnv(MultimodalTrainingVectorEnv[QuantityMap]):
    """Data-aware unimodal sampling over K inner runs.

    Action per run: Box[−1, 1]^M, mapped by :class:`~mmrl_env.samplers.unimodal.QuantityMap`
    to n_j (``budget_mode="fixed"``: Σ n_j = M·B always; ``"free"``: each n_j in [n_min, n_max]).
    Step: ``step_fraction`` of an epoch of iterations (default ½ epoch), every modality
    drawing its n_j samples from the run's one shared shuffled order; runs with different
    n_j share one batched step through per-sample masks.

    Extra kwargs (beyond the common ones): budget_mode, n_min (default B/4), n_max (default 2B,
    capped by the fixed budget), temperature, step_fraction.
    """

    method = "DUS"
    REMOVED_KWARGS: ClassVar[dict[str, str]] = {"budget": "budget_mode"}

    def __init__(self, budget_mode: str = "fixed", n_min: int | None = None, n_max: int | None = None,
                 temperature: float = 2.0, step_fraction: float = 0.5, **kwargs: Any) -> None:
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a positive finite number, got {temperature}")
        if not 0 < step_fraction <= 1:
            raise ValueError(f"step_fraction must be in (0, 1] of an epoch, got {step_fraction}")
        if budget_mode not in BUDGET_MODES:
            raise ValueError(f"unknown budget_mode {budget_mode!r}; choose one of {', '.join(BUDGET_MODES)}")

        def quantity_map(m: int, b: int) -> QuantityMap:
            return QuantityMap(m, b, n_min=b // 4 if n_min is None else n_min, n_max=2 * b if n_max is None else n_max,
                               mode=budget_mode, temperature=temperature)

        super().__init__(quantity_map, (), {"budget_mode": budget_mode}, **kwargs)
        self.step_iterations = max(1, round(step_fraction * self.inner_run.iterations_per_epoch))

    def _advance(self, actions: np.ndarray, stepping: np.ndarray) -> tuple[torch.Tensor, Infos]:
        sizes = [self.action_map.quantities(a) for a in actions]
        loss = self.inner_run.train(self.step_iterations, sizes, active=torch.from_numpy(stepping),
                                  hooks=(self._observe_batch,))
        return loss, [{"n": dict(zip(self.modalities, n, strict=True))} for n in sizes]

    def _method_info(self, run: int) -> dict[str, Any]:
        return {"n": dict.fromkeys(self.modalities, self.inner_run.cfg.batch_size)}


class DUSEnv(MultimodalTrainingEnv):
    """One DUS inner run: the K = 1 view of :class:`DUSVectorEnv` (same kwargs, minus K)."""

    vector_class = DUSVectorEnv
    runs: DUSVectorEnv
