"""BatchNorm for the K-run engine: batch statistics over the *valid* rows, running stats returned.

Why one special layer: under ``vmap(grad(...))`` two things break ``nn.BatchNorm2d``. Its
running-statistic update is an in-place write into a buffer captured from outside the
transforms, and its batch statistics would include the masked (padding) rows that a run with
n_kj < N_max does not train on. So the engine swaps every ``nn.BatchNorm2d`` of its functional
template for :class:`MaskedBatchNorm2d` (same parameter and buffer names, so a model's
``state_dict`` loads unchanged), which

* in training mode normalises with the mean/biased variance of the rows whose mask is 1 — with
  every row valid that is exactly ``nn.BatchNorm2d``'s training forward — and *records* the
  batch statistics (mean, unbiased variance, valid count) in the active :func:`bn_rows` scope
  instead of writing buffers; the engine returns them from the functional step as auxiliary
  output and folds them into its stacked running buffers with :func:`update_running_stats`;
* in eval mode normalises with the running statistics, as ``nn.BatchNorm2d.eval()`` does.

A run whose mask is all zero (an inactive run) gets finite outputs (variance 1) and a count of
0, so its running statistics are left alone.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


@dataclass
class _Rows:
    mask: Tensor  # (N,) float: 1 for a row the run trains on, 0 for padding
    stats: dict[str, tuple[Tensor, Tensor, Tensor]] = field(default_factory=dict)  # name -> (mean, var, count)


_ROWS: ContextVar[_Rows | None] = ContextVar("mmrl_bn_rows", default=None)


@contextlib.contextmanager
def bn_rows(mask: Tensor, stats: dict[str, tuple[Tensor, Tensor, Tensor]]) -> Iterator[None]:
    """Within this scope, training-mode :class:`MaskedBatchNorm2d` layers use the rows where
    ``mask`` is 1 and record their batch statistics in ``stats`` under the layer's name
    (mean, unbiased variance, number of valid values)."""
    token = _ROWS.set(_Rows(mask, stats))
    try:
        yield
    finally:
        _ROWS.reset(token)


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with batch statistics over the valid rows and no buffer writes."""

    qualified_name = ""  # the layer's name in the model, set by :func:`masked_template`

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1, 1, 1)
        if not self.training:
            scale = torch.rsqrt(self.running_var + self.eps)
            return (x - self.running_mean.view(shape)) * (scale * self.weight).view(shape) + self.bias.view(shape)
        rows = _ROWS.get()
        if rows is None:
            raise RuntimeError("MaskedBatchNorm2d in training mode needs a bn_rows(mask, stats) scope")
        w = rows.mask.to(x.dtype).view(-1, 1, 1, 1)
        count = rows.mask.sum() * (x.shape[2] * x.shape[3])
        denom = count.clamp(min=1)
        mean = (x * w).sum((0, 2, 3)) / denom
        centred = x - mean.view(shape)
        var = (centred.square() * w).sum((0, 2, 3)) / denom
        var = torch.where(count > 0, var, torch.ones_like(var))
        if self.qualified_name in rows.stats:
            raise RuntimeError(f"BatchNorm layer {self.qualified_name!r} ran twice in one step; the engine "
                               "supports each BatchNorm layer once per forward")
        rows.stats[self.qualified_name] = (mean, var * count / (count - 1).clamp(min=1), count)
        return centred * (torch.rsqrt(var + self.eps) * self.weight).view(shape) + self.bias.view(shape)


def masked_template(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the meta device (no storage: ``functional_call`` supplies every
    tensor) with each ``nn.BatchNorm2d`` replaced by :class:`MaskedBatchNorm2d`."""
    template = copy.deepcopy(model).to("meta")
    for prefix, module in list(template.named_modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and type(child) is not nn.BatchNorm2d:
                raise ValueError(f"{type(child).__name__} is not supported by the vector engine (BatchNorm2d only)")
            if type(child) is nn.BatchNorm2d:
                if not (child.affine and child.track_running_stats and child.momentum is not None):
                    raise ValueError("the vector engine supports affine BatchNorm2d with running stats and a "
                                     "fixed momentum only")
                masked = MaskedBatchNorm2d(child.num_features, child.eps, child.momentum, device="meta")
                masked.qualified_name = f"{prefix}.{name}" if prefix else name
                setattr(module, name, masked)
    return template


def batchnorm_momenta(template: nn.Module) -> dict[str, float]:
    """The masked layers of a template: name -> momentum."""
    return {m.qualified_name: float(m.momentum) for m in template.modules() if isinstance(m, MaskedBatchNorm2d)}


@torch.no_grad()
def update_running_stats(buffers: dict[str, Tensor], prefix: str, momentum: float,
                         stats: tuple[Tensor, Tensor, Tensor], active: Tensor) -> None:
    """Fold one layer's stacked batch statistics (leading run axis) into its stacked buffers,
    as ``nn.BatchNorm2d`` does, for the runs that stepped (``active``) on at least one row."""
    mean, var, count = stats
    step = active & (count > 0)
    gate = (step.to(mean.dtype) * momentum).view(-1, *([1] * (mean.dim() - 1)))
    rm, rv = buffers[f"{prefix}.running_mean"], buffers[f"{prefix}.running_var"]
    rm.mul_(1 - gate).add_(gate * mean.to(rm.dtype))
    rv.mul_(1 - gate).add_(gate * var.to(rv.dtype))
    buffers[f"{prefix}.num_batches_tracked"].add_(step.long())
