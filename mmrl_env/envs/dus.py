"""DUS as an environment: the action sets each modality's sample quantity n_j (SPEC §3, §6)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from mmrl_env.envs.base import MultimodalTrainingEnv
from mmrl_env.samplers.unimodal import QuantityMap


class DUSEnv(MultimodalTrainingEnv):
    """Data-aware unimodal sampling.

    Action: Box[−1, 1]^M, mapped by :class:`~mmrl_env.samplers.unimodal.QuantityMap` to
    n_j (``budget="fixed"``: Σ n_j = M·B always; ``"free"``: each n_j in [n_min, n_max]).
    Step: ``step_fraction`` of an epoch of iterations (default ½ epoch), every modality
    drawing its n_j samples from one shared shuffled order.

    Extra kwargs (beyond :class:`MultimodalTrainingEnv`): budget, n_min (default B/4),
    n_max (default 2B, capped by the fixed budget), temperature, step_fraction.
    """

    def __init__(self, budget: str = "fixed", n_min: int | None = None, n_max: int | None = None,
                 temperature: float = 2.0, step_fraction: float = 0.5, **kwargs: Any) -> None:
        if not 0 < step_fraction <= 1:
            raise ValueError(f"step_fraction must be in (0, 1] of an epoch, got {step_fraction}")
        self._qmap_args = dict(mode=budget, n_min=n_min, n_max=n_max, temperature=temperature)
        self.step_fraction = step_fraction
        super().__init__(**kwargs)
        self.step_iterations = max(1, round(step_fraction * self.trainer.iterations_per_epoch))

    def _make_action_space(self) -> gym.spaces.Box:
        m, b = self.data.num_modalities, self.trainer.cfg.batch_size
        a = self._qmap_args
        self.qmap = QuantityMap(m, b, n_min=b // 4 if a["n_min"] is None else a["n_min"],
                                n_max=2 * b if a["n_max"] is None else a["n_max"],
                                mode=a["mode"], temperature=a["temperature"])
        return gym.spaces.Box(-1.0, 1.0, (m,), dtype=np.float32)

    def _advance(self, action: np.ndarray) -> dict[str, Any]:
        sizes = self.qmap.quantities(action)
        loss = self.trainer.train(self.step_iterations, sizes, hooks=(self._observe_batch,))
        return {"n": dict(zip(self.modalities, sizes, strict=True)), "train_loss": loss.item()}


    def _info(self, step_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        step_info.setdefault("n", dict.fromkeys(self.modalities, self.trainer.cfg.batch_size))
        return super()._info(step_info, **extra)
