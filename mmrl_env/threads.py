"""Torch CPU threads for the inner trainer, whatever the entry point.

The inner models are small and make many tiny ops: on a CPU, one intra-op thread is the
fastest, and by far when other processes share the cores (BENCHMARKS.md, "Torch threads").
The CLIs set ``--threads 1`` for the whole process; ``gym.make``, ``make_vec`` and the zoo
never did, so they ran at torch's default (one thread per core). The envs therefore run
their inner training, validation and test passes under :func:`inner_threads`, which sets the
resolved count for that work only and restores the caller's afterwards (the agent's own
updates keep the caller's setting).

The env setting ``threads``: an int ``n`` >= 1 uses ``n`` threads; 0 leaves torch's setting
alone; ``"auto"`` (the default) uses :data:`AUTO_THREADS` on a CPU device unless the caller
chose a count, which it then respects: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, or
``torch.set_num_threads(n)`` with ``n`` other than torch's default (one per core: a count
equal to the core count cannot be told from the default; say ``threads=0`` or
``mmrl_env.set_default_threads(0)`` then). A CUDA device is left alone. The process-wide
meaning of ``"auto"`` is :func:`set_default_threads` (the CLIs' ``--threads`` sets it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import torch

AUTO_THREADS = 1
EXPLICIT_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_default: int | str = "auto"
S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def torch_default_counts() -> frozenset[int]:
    """The thread counts torch picks by itself: physical cores (its default), logical CPUs,
    the CPUs this process may use."""
    cores = set()
    for cpu in Path("/sys/devices/system/cpu").glob("cpu[0-9]*"):
        try:
            cores.add(((cpu / "topology" / "physical_package_id").read_text(),
                       (cpu / "topology" / "core_id").read_text()))
        except OSError:
            continue
    counts = {len(cores), os.cpu_count() or 1}
    if hasattr(os, "sched_getaffinity"):
        counts.add(len(os.sched_getaffinity(0)))
    return frozenset(c for c in counts if c > 0)


def set_default_threads(threads: int | str) -> None:
    """What ``threads="auto"`` means in this process: an int (0 = leave torch alone) or ``"auto"``."""
    global _default
    _default = check_threads(threads)


def check_threads(threads: int | str) -> int | str:
    if threads == "auto":
        return threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be 'auto' or an integer >= 0 (0 = torch's own setting), got {threads!r}")
    return threads


def resolve_threads(threads: int | str, device: torch.device) -> int:
    """The intra-op thread count for the inner work; 0 = leave torch's current setting."""
    threads = check_threads(threads)
    if threads == "auto":
        threads = _default
    if threads != "auto":
        return int(threads)
    explicit = (any(os.environ.get(k) for k in EXPLICIT_ENV)
                or torch.get_num_threads() not in torch_default_counts())
    return 0 if explicit or device.type != "cpu" else AUTO_THREADS


@contextmanager
def inner_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (0: unchanged), then restore the caller's count."""
    before = torch.get_num_threads()
    if n <= 0 or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def scoped_threads(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run an env method under :func:`inner_threads` with the env's ``threads`` setting."""
    @functools.wraps(method)
    def wrapper(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        env: Any = self  # any env with a ``threads`` setting and a ``trainer``
        with inner_threads(resolve_threads(env.threads, env.inner_run.device)):
            return method(self, *args, **kwargs)
    return wrapper
