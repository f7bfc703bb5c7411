"""The inner run: K independent inner training runs driven as one (K = 1: one run).

It sits above the learners and below the monitors and environments:

* :mod:`~mmrl_env.inner_run.run` — :class:`InnerRun`: K runs, each with its own seed, index
  stream, counters and learner state (the learners themselves live in :mod:`mmrl_env.learners`);
* :mod:`~mmrl_env.inner_run.settings` — :class:`InnerRunConfig` (batch size, length, learner,
  optimisation), the device, and a registered dataset with its run settings;
* :mod:`~mmrl_env.inner_run.build` — :func:`build_inner_run`: which device, and whether a step is
  batched or looped over the runs;
* :mod:`~mmrl_env.inner_run.stream` — each run's shuffled index stream over the training split.
"""

from mmrl_env.inner_run.build import ENGINES, build_inner_run
from mmrl_env.inner_run.run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig

__all__ = ["ENGINES", "InnerRun", "InnerRunConfig", "build_inner_run"]
