"""Building an env's inner run: how its K runs are stepped, and on which device.

Every configuration trains on :class:`~mmrl_env.inner_run.run.InnerRun` with its one set of
learners; the build only picks how a step is mapped over the runs
(:mod:`~mmrl_env.engine.runs`). ``engine="batched"``: one ``vmap``-ed step (or the explicit MLP
kernel) for all K runs — the small encoders (``BATCHED_ENCODERS``: the MLP and the small CNN of
Synthetic and ``Custom`` data). ``engine="sequential"``: the same per-run step in a loop — the
path of the big encoders (ResNet, BERT, I3D, 3-D ResNets), which already fill a GPU at B = 64.
``auto`` (default) batches wherever it applies and is faster: not the big encoders, and not
the small CNN on a CPU (``CPU_SEQUENTIAL_ENCODERS``). K = 1 (``gym.make``) takes the same rule.

``device="auto"``: CUDA when present — except for the small encoders with fewer than
``SMALL_MODEL_GPU_MIN_RUNS`` runs, which are launch-bound on a GPU (one Synthetic step is
~3.5 ms on an H100, slower than two CPU cores) and so stay on the CPU.
"""

from __future__ import annotations

from typing import Any

import torch

from mmrl_env.inner_run.run import InnerRun
from mmrl_env.inner_run.settings import resolve_device, setup_inner_run

ENGINES = ("auto", "batched", "sequential")
BATCHED_ENCODERS = ("mlp", "cnn")
SMALL_MODEL_GPU_MIN_RUNS = 64
CPU_SEQUENTIAL_ENCODERS = ("cnn",)
"""Encoders that ``auto`` runs in sequence on a CPU: the small CNN's ``vmap`` step (grouped
convolutions, masked BatchNorm) measured 0.4–0.75× the work of separate runs there (K = 1–16);
``engine="batched"`` still runs it batched, and on CUDA ``auto`` batches it."""


def batched_blocker(encoders: list[str]) -> str | None:
    """Why the batched engine cannot run this configuration, or ``None`` when it can (every
    learner vectorizes; the big encoders run in sequence)."""
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


def vectorized(engine: str, encoders: list[str], device: torch.device) -> bool:
    """Whether ``engine`` batches the runs' step (``vmap`` / the MLP kernel) for these encoders on
    ``device``, rather than looping over the runs (module doc). ``batched`` where it cannot apply
    is refused by :func:`build_inner_run`; here it answers False."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "sequential" or batched_blocker(encoders) is not None:
        return False
    slow_on_cpu = device.type == "cpu" and bool(set(encoders) & set(CPU_SEQUENTIAL_ENCODERS))
    return not (engine == "auto" and slow_on_cpu)


def build_inner_run(dataset: str, dataset_kwargs: dict[str, Any] | None, learner: str,
                    learner_kwargs: dict[str, Any] | None, batch_size: int, epochs: int,
                    optim: dict[str, Any] | None, device: str | torch.device, num_runs: int,
                    engine: str = "auto") -> InnerRun:
    """K inner runs on a registered dataset, batched where that is faster (module doc)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    data, cfg = setup_inner_run(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs, optim)
    encoders = [spec.encoder for spec in data.modalities]
    blocker = batched_blocker(encoders)
    if engine == "batched" and blocker:
        raise ValueError(f"engine='batched' cannot run this env: {blocker}; use engine='auto' or 'sequential'")
    where = choose_device(device, encoders, num_runs)
    return InnerRun(data, cfg, num_runs, where, vectorize=vectorized(engine, encoders, where))
