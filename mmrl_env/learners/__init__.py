"""Inner learners, selectable by name (``learner=`` in every env)."""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:Class"; resolved lazily.
LEARNERS: dict[str, str] = {
    "joint": "mmrl_env.learners.joint:JointLearner",
    "ogm_ge": "mmrl_env.learners.ogm_ge:OGMGELearner",
    "mla": "mmrl_env.learners.mla:MLALearner",
    "boosting": "mmrl_env.learners.boosting:BoostingLearner",
}


def build_learner(name: str, *args: Any, **kwargs: Any) -> Any:
    """Instantiate learner ``name`` with the Learner constructor's arguments."""
    if name not in LEARNERS:
        raise KeyError(f"unknown learner {name!r}; known learners: {', '.join(LEARNERS)}")
    module, cls = LEARNERS[name].split(":")
    return getattr(importlib.import_module(module), cls)(*args, **kwargs)
