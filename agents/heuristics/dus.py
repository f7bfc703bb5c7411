"""DUS-H as a policy: read d from the observation, give the weaker modality more samples."""

from __future__ import annotations

import numpy as np

from mmrl_agents.heuristics.base import HeuristicPolicy
from mmrl_env.samplers.unimodal import dus_heuristic_quantities


class DUSHeuristicPolicy(HeuristicPolicy):
    """n_j ∝ softmax(−κ·d_j)·M·B, clipped, with dead zone τ (our formulation: the DUS paper
    does not publish its rule; docs/design.md, "DUS: choices where the paper is not public").

    The quantities are turned back into the env's action with ``QuantityMap.action``, so
    the env sees an ordinary action, exactly as from a trained agent.
    """

    name = "dus-h"
    methods = ("DUS",)

    def __init__(self, env, seed: int | None = None, kappa: float = 20.0, tau: float = 0.02) -> None:
        super().__init__(env, seed, kappa=kappa, tau=tau)

    def act(self, obs: np.ndarray) -> np.ndarray:
        qmap = self.control.action_map
        n = dus_heuristic_quantities(obs[self.control.layout.d], qmap, self.params["kappa"], self.params["tau"])
        return qmap.action(np.asarray(n))
