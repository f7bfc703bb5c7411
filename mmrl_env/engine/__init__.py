"""The inner engine: K independent inner runs trained as one computation (K = 1: one run).

* :mod:`~mmrl_env.engine.trainer` — :class:`VectorTrainer`: K runs, each with its own seed, index
  stream, counters and learner state; the learners themselves live in :mod:`mmrl_env.learners`;
* :mod:`~mmrl_env.engine.build` — builds the run trainer: which device, and whether a step is batched
  or looped over the runs;
* :mod:`~mmrl_env.engine.runs` — one run's step mapped over the K runs (``vmap`` or a loop);
* :mod:`~mmrl_env.engine.kernels` — the joint learner's explicit batched MLP step (forward + exact backward);
* :mod:`~mmrl_env.engine.stack` — K models as stacked parameters/buffers;
* :mod:`~mmrl_env.engine.optim` — SGD/Adam and StepLR with per-run state and lr;
* :mod:`~mmrl_env.engine.batchnorm` — BatchNorm over valid rows, running stats returned;
* :mod:`~mmrl_env.engine.batch` — the K-run batch (per-sample masks), step output and prediction.

The names below load on first use: the learners import the engine's building blocks
(``stack``, ``optim``, ...), and the trainer imports the learners, so importing this package
must not pull in the trainer.
"""

from __future__ import annotations

from typing import Any

from mmrl_env.resolve import resolve

_EXPORTS = {"VectorBatch": "mmrl_env.engine.batch", "VectorPrediction": "mmrl_env.engine.batch",
            "VectorStepOutput": "mmrl_env.engine.batch", "VectorTrainer": "mmrl_env.engine.trainer"}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return resolve(f"{_EXPORTS[name]}:{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
