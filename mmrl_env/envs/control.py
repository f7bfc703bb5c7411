"""What a policy may know about an env, as one public object: :class:`ControlSpec`.

Heuristic policies (DUS-H, BSS-H, ...) need the observation layout (where d and progress
sit), the action map (to turn the n_j or λ they want into an action) and a few settings
(the run's length, BSS's curriculum). Reading those through ``env.unwrapped`` would tie a
policy to env internals; every env instead publishes ``env.control``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmrl_env.envs.layout import ObservationLayout
from mmrl_env.samplers.curriculum import ProportionMap
from mmrl_env.samplers.unimodal import QuantityMap

ActionMap = QuantityMap | ProportionMap


@dataclass(frozen=True)
class ControlSpec:
    """The env's declared interface for policies.

    method: ``DUS`` or ``BSS``. modalities: names, in observation/action order.
    layout: the observation layout. action_map: action ↔ n_j (:class:`QuantityMap`) or
    λ (:class:`ProportionMap`), both ways. epochs: length of an inner run in epochs.
    settings: env settings a policy may depend on (e.g. BSS's ``curriculum``).
    """

    method: str
    modalities: tuple[str, ...]
    layout: ObservationLayout
    action_map: ActionMap
    epochs: int
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def action_names(self) -> list[str]:
        """What each action entry controls: a modality's sample quantity (DUS) or ``lambda`` (BSS)."""
        return list(self.modalities) if isinstance(self.action_map, QuantityMap) else ["lambda"]


def control_of(env: Any) -> ControlSpec:
    """The :class:`ControlSpec` of a Gymnasium env (through any wrappers) or of a vector env
    (Gymnasium's or an SB3 ``VecEnv``: every sub-env shares one spec); a ``ControlSpec`` itself
    as it is (a policy can be built from the spec alone, without an env)."""
    if isinstance(env, ControlSpec):
        return env
    if isinstance(getattr(env, "control", None), ControlSpec):
        return env.control
    if hasattr(env, "get_wrapper_attr"):
        return env.get_wrapper_attr("control")
    if hasattr(env, "get_attr"):  # SB3 VecEnv (duck-typed: mmrl_env imports no agent library)
        return env.get_attr("control", [0])[0]
    raise TypeError(f"{type(env).__name__} is not an mmrl env: it publishes no ControlSpec (env.control)")
