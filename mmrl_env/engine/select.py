"""Which K-run trainer runs an env's inner runs, and on which device.

``engine="batched"``: :class:`~mmrl_env.engine.trainer.VectorTrainer`, one ``vmap``-ed step for
all K runs. It covers the learners in ``VECTOR_LEARNERS`` with the small encoders
(``BATCHED_ENCODERS``: the MLP and the small CNN of Synthetic and ``Custom`` data).
``engine="sequential"``: :class:`~mmrl_env.engine.sequential.SequentialTrainer`, K ordinary
runs in turn — the path of the big encoders (ResNet, BERT, I3D, 3-D ResNets), which already
fill a GPU at B = 64 (every learner is on the run axis). ``auto`` (default) picks
``batched`` wherever it applies and is faster: from ``BATCHED_MIN_RUNS`` runs, and not for
the small CNN on a CPU (``CPU_SEQUENTIAL_ENCODERS``).

``device="auto"``: CUDA when present — except for the small encoders with fewer than
``SMALL_MODEL_GPU_MIN_RUNS`` runs, which are launch-bound on a GPU (one Synthetic step is
~3.5 ms on an H100, slower than two CPU cores) and so stay on the CPU.
"""

from __future__ import annotations

from typing import Any

import torch

from mmrl_env.engine.sequential import SequentialTrainer
from mmrl_env.engine.trainer import VECTOR_LEARNERS, VectorTrainer
from mmrl_env.trainer import resolve_device, trainer_setup

ENGINES = ("auto", "batched", "sequential")
BATCHED_ENCODERS = ("mlp", "cnn")
SMALL_MODEL_GPU_MIN_RUNS = 64
BATCHED_MIN_RUNS = 2
"""Fewest runs for which ``engine="auto"`` batches (fewer: the plain sequential path).

Measured (``bench/vector_throughput.py``, Synthetic features, 1 CPU thread): with the explicit
MLP kernel (:mod:`mmrl_env.engine.kernels`) the batched step already breaks even at K = 1
(~1.1× a plain run) and does ~1.7× the work of 2 separate runs at K = 2. K = 1 still takes
the plain path because there it is *bit-identical* to ``InnerTrainer`` (the golden
trajectories of ``gym.make`` envs), while the batched step agrees only to float tolerance,
and it gains nothing measurable there. (Before the kernel, the ``vmap`` step cost ~3× a plain
run at K = 1 and broke even only at K = 4.)"""
CPU_SEQUENTIAL_ENCODERS = ("cnn",)
"""Encoders that ``auto`` runs in sequence on a CPU: the small CNN's ``vmap`` step (grouped
convolutions, masked BatchNorm) measured 0.4–0.75× the work of separate runs there (K = 1–16);
``engine="batched"`` still runs it batched, and on CUDA ``auto`` batches it."""


def batched_blocker(encoders: list[str], learner: str) -> str | None:
    """Why the batched engine cannot run this configuration, or ``None`` when it can."""
    if learner not in VECTOR_LEARNERS:
        return f"learner {learner!r} is not on the run axis yet (batched learners: {', '.join(VECTOR_LEARNERS)})"
    big = sorted(set(encoders) - set(BATCHED_ENCODERS))
    if big:
        return f"encoder(s) {big} run in sequence (batched encoders: {', '.join(BATCHED_ENCODERS)})"
    return None


def choose_device(device: str | torch.device, encoders: list[str], num_runs: int) -> torch.device:
    """``auto`` -> CUDA when present, unless the model is small and the runs few (see module doc)."""
    if str(device) == "auto" and torch.cuda.is_available():
        small = not set(encoders) - set(BATCHED_ENCODERS)
        return torch.device("cpu" if small and num_runs < SMALL_MODEL_GPU_MIN_RUNS else "cuda")
    return resolve_device(device)


def build_run_trainer(dataset: str, dataset_kwargs: dict[str, Any] | None, learner: str,
                      learner_kwargs: dict[str, Any] | None, batch_size: int, epochs: int,
                      optim: dict[str, Any] | None, device: str | torch.device, num_runs: int,
                      engine: str = "auto") -> VectorTrainer | SequentialTrainer:
    """K inner runs on a registered dataset, batched where the engine covers them."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    data, cfg = trainer_setup(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs, optim)
    encoders = [spec.encoder for spec in data.modalities]
    blocker = batched_blocker(encoders, learner)
    if engine == "batched" and blocker:
        raise ValueError(f"engine='batched' cannot run this env: {blocker}; use engine='auto' or 'sequential'")
    where = choose_device(device, encoders, num_runs)
    slow_on_cpu = where.type == "cpu" and bool(set(encoders) & set(CPU_SEQUENTIAL_ENCODERS))
    if engine == "sequential" or blocker or (engine == "auto" and (num_runs < BATCHED_MIN_RUNS or slow_on_cpu)):
        return SequentialTrainer(data, cfg, num_runs, where)
    return VectorTrainer(data, cfg, num_runs, where)
