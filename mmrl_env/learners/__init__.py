"""Inner learners, selectable by name (``learner=`` in every env)."""

from __future__ import annotations

import importlib
from typing import Any

from mmrl_env.kwargs import accepted_kwargs, unknown_kwargs_message

# name -> "module:Class"; resolved lazily.
LEARNERS: dict[str, str] = {
    "joint": "mmrl_env.learners.joint:JointLearner",
    "ogm_ge": "mmrl_env.learners.ogm_ge:OGMGELearner",
    "mla": "mmrl_env.learners.mla:MLALearner",
    "boosting": "mmrl_env.learners.boosting:BoostingLearner",
}


def learner_class(name: str) -> type:
    if name not in LEARNERS:
        raise KeyError(f"unknown learner {name!r}; known learners: {', '.join(LEARNERS)}")
    module, cls = LEARNERS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def check_learner(name: str, kwargs: dict[str, Any]) -> None:
    """Unknown learner names or ``learner_kwargs`` fail with the valid ones listed."""
    message = unknown_kwargs_message(kwargs, accepted_kwargs(learner_class(name)), "learner_kwargs",
                                     f"learner {name!r}")
    if message:
        raise ValueError(message)


def build_learner(name: str, *args: Any, **kwargs: Any) -> Any:
    """Instantiate learner ``name`` with the Learner constructor's arguments."""
    return learner_class(name)(*args, **kwargs)
