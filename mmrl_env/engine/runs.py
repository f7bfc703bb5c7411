"""Mapping one run's step over the K runs: ``vmap`` (batched) or a loop (in sequence).

Every learner writes its math once, for one run (``_loss(flat_row, buffers, inputs, ...)``).
:class:`RunMap` applies it to all K runs either way:

* ``vectorize=True`` — ``torch.func.vmap``: one batched computation, the fast path of the small
  models (MLP and small-CNN encoders), launch-bound on a GPU and overhead-bound on a CPU;
* ``vectorize=False`` — a Python loop over the runs, each an ordinary (unbatched) call of the
  same function, outputs stacked on a new leading run axis. This is the path of the big
  encoders (ResNet, BERT, I3D/3-D ResNets): they already fill a GPU at B = 64, so a run axis
  would buy little, and outside ``vmap`` they keep what ``vmap`` cannot express (dropout's
  randomness, any memory format) and skip the padding rows (``encode_rows(trim=True)``).

Both give the same per-run results to float tolerance (tests/test_engine_runs.py); the switch
is the engine's (``engine=`` in every env, chosen by :mod:`mmrl_env.inner_run.build`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_map


def loop_runs(fn: Callable[..., Any], in_dims: Sequence[int | None], args: Sequence[Any]) -> Any:
    """``vmap(fn, in_dims)(*args)`` computed run by run: the arguments mapped over (in_dims 0)
    are indexed per run, the others shared; outputs stacked along a new dim 0."""
    mapped = [a for a, d in zip(args, in_dims, strict=True) if d == 0]
    leaves = tree_flatten(mapped)[0]
    if not leaves:
        raise ValueError("loop_runs needs at least one argument mapped over the runs (in_dims 0)")
    k = leaves[0].shape[0]
    outs = [fn(*(tree_map(lambda t, r=r: t[r], a) if d == 0 else a for a, d in zip(args, in_dims, strict=True)))
            for r in range(k)]
    return tree_map(lambda *xs: torch.stack(xs) if isinstance(xs[0], torch.Tensor) else xs[0], outs[0], *outs[1:])


class RunMap:
    """``fn`` over the runs, batched or looped according to the owner's ``vectorize`` flag at call time."""

    def __init__(self, fn: Callable[..., Any], in_dims: Sequence[int | None], owner: Any) -> None:
        self.fn, self.in_dims, self.owner = fn, tuple(in_dims), owner
        self.batched = vmap(fn, in_dims=self.in_dims)

    def __call__(self, *args: Any) -> Any:
        if self.owner.vectorize:
            return self.batched(*args)
        return loop_runs(self.fn, self.in_dims, args)
