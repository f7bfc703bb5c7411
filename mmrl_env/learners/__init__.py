"""Inner learners, selectable by name (``learner=`` in every env).

Each learner trains K inner runs at once (run k = one run with its own seed; K = 1 is one run).
The registry names each class as ``"module:Class"``, loaded on first use, so that listing the
learners (the CLIs' ``--help``) imports no torch, as the env and dataset registries do.
"""

from __future__ import annotations

from typing import Any

from mmrl_env.kwargs import accepted_kwargs, removed_kwargs, unknown_kwargs_message
from mmrl_env.resolve import resolve

# name -> "module:Class"; resolved lazily.
LEARNERS: dict[str, str] = {
    "joint": "mmrl_env.learners.joint:JointLearner",
    "ogm_ge": "mmrl_env.learners.ogm_ge:OGMGELearner",
    "mla": "mmrl_env.learners.mla:MLALearner",
    "boosting": "mmrl_env.learners.boosting:BoostingLearner",
}


def learner_class(name: str) -> type:
    """The learner class registered as ``name`` (imported on first use)."""
    if name not in LEARNERS:
        raise KeyError(f"unknown learner {name!r}; known learners: {', '.join(LEARNERS)}")
    return resolve(LEARNERS[name])


def check_learner(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Unknown learner names or ``learner_kwargs`` fail with the valid ones listed (a name
    removed before 1.0: with its replacement). Returns ``kwargs``."""
    cls = learner_class(name)
    message = unknown_kwargs_message(kwargs, accepted_kwargs(cls), "learner_kwargs", f"learner {name!r}",
                                     removed_kwargs(cls))
    if message:
        raise ValueError(message)
    return kwargs


def build_learner(name: str, *args: Any, **kwargs: Any) -> Any:
    """Instantiate learner ``name``: ``(dataset, optim, device, generators, **learner_kwargs)``, one
    generator per run."""
    return learner_class(name)(*args, **kwargs)
