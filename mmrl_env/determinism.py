"""Deterministic CUDA kernels, for runs that must resume bit for bit (``--deterministic``).

On the CPU every run of this package is already reproducible from its seeds. On CUDA some
kernels may pick a different reduction order from call to call (cuBLAS workspaces shared
between streams, cuDNN's autotuned algorithms, atomics); a resumed run can then drift from
the uninterrupted one by rounding errors that grow (issue 13: SAC's Adam ``exp_avg`` differed
by up to 2.4e-5 on an H100). :func:`set_deterministic` switches on what PyTorch offers:

* ``torch.use_deterministic_algorithms(True, warn_only=...)``: ops with a deterministic
  variant use it; ops without one warn (default) or raise (``warn_only=False``). The default
  is to warn because the inner ResNets' ``AdaptiveAvgPool2d`` backward on CUDA has no
  deterministic implementation: raising would make every CUDA image run impossible, while
  the agents' MLPs (Linear, Adam) are fully covered;
* ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which cuBLAS needs to be deterministic; PyTorch sizes
  its cuBLAS workspaces once, at the first cuBLAS call, so call this before any CUDA work
  (the training CLIs do it first thing);
* ``torch.backends.cudnn.deterministic = True`` and ``benchmark = False`` (no autotuning).

Cost: cuDNN's autotuner is off and some ops take slower deterministic paths, hence an
option, off by default. Even with it, PyTorch guarantees identity only on the same GPU
model, driver, CUDA and PyTorch versions; across those, a resumed run is close, not identical.
"""

from __future__ import annotations

import os

import torch

CUBLAS_WORKSPACE = ":4096:8"
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")  # the two settings cuBLAS documents as deterministic


def set_deterministic(enabled: bool = True, warn_only: bool = True) -> None:
    """Turn deterministic algorithms on (or back off with ``enabled=False``). A user's own
    deterministic ``CUBLAS_WORKSPACE_CONFIG`` is kept; any other value is replaced."""
    if enabled and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in CUBLAS_DETERMINISTIC:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False if enabled else torch.backends.cudnn.benchmark


def is_deterministic() -> bool:
    """Whether :func:`set_deterministic` is in effect (PyTorch's flag and cuDNN's)."""
    return torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
