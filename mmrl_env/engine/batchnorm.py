"""BatchNorm for the K-run engine: batch statistics over the *valid* rows, running stats returned.

Why one special layer: under ``vmap(grad(...))`` two things break ``nn.BatchNorm2d``. Its
running-statistic update is an in-place write into a buffer captured from outside the
transforms, and its batch statistics would include the masked (padding) rows that a run with
n_kj < N_max does not train on. So the engine swaps every ``nn.BatchNorm1d/2d/3d`` of its
functional template for :class:`MaskedBatchNorm` (same parameter and buffer names, so a model's
``state_dict`` loads unchanged), which

* in training mode normalises with the mean/biased variance of the rows whose mask is 1 — with
  every row valid that is exactly ``nn.BatchNorm``'s training forward — and *records* the
  batch statistics (mean, unbiased variance, valid count) in the active :func:`bn_rows` scope
  instead of writing buffers; the engine returns them from the functional step as auxiliary
  output and folds them into its stacked running buffers with :func:`update_running_stats`;
* in eval mode normalises with the running statistics, as ``nn.BatchNorm.eval()`` does.

The same layer serves both ways of mapping a step over the runs (``vmap`` and the per-run loop
of :mod:`~mmrl_env.engine.runs`); :func:`encode_rows` is where a model's encoder meets it.

A run whose mask is all zero (an inactive run) gets finite outputs (variance 1) and a count of
0, so its running statistics are left alone.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

BNStats = dict[str, tuple[Tensor, Tensor, Tensor]]  # layer name -> batch (mean, unbiased var, valid count)


@dataclass
class _Rows:
    mask: Tensor  # (N,) float: 1 for a row the run trains on, 0 for padding
    dense: bool = False  # every row but possibly a lone placeholder is valid (encode_rows' trim): native kernel
    stats: BNStats = field(default_factory=dict)


BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ROWS: ContextVar[_Rows | None] = ContextVar("mmrl_bn_rows", default=None)
_BATCH_STATS: ContextVar[bool] = ContextVar("mmrl_bn_batch_stats", default=False)


@contextlib.contextmanager
def batch_statistics() -> Iterator[None]:
    """Within this scope, eval-mode :class:`MaskedBatchNorm` layers normalise with the statistics
    of the rows they are given (every row), as ``nn.BatchNorm`` does in ``train()`` mode, and
    record and change nothing: a prediction "in train mode" without touching the running stats
    (BSS's measurer as the authors' code runs it; :class:`~mmrl_env.monitors.balance.BalanceMeasurer`)."""
    token = _BATCH_STATS.set(True)
    try:
        yield
    finally:
        _BATCH_STATS.reset(token)


@contextlib.contextmanager
def bn_rows(mask: Tensor, stats: BNStats, dense: bool = False) -> Iterator[None]:
    """Within this scope, training-mode :class:`MaskedBatchNorm` layers use the rows where
    ``mask`` is 1 and record their batch statistics in ``stats`` under the layer's name
    (mean, unbiased variance, number of valid values). ``dense``: the caller promises every
    row is valid (or the mask is a single 0, whose count 0 leaves the running stats alone), so
    the layer may use the fused native kernel — ~3× cheaper on a CPU than the masked ops."""
    token = _ROWS.set(_Rows(mask, dense=dense, stats=stats))
    try:
        yield
    finally:
        _ROWS.reset(token)


class MaskedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """``nn.BatchNorm1d/2d/3d`` with batch statistics over the valid rows and no buffer writes."""

    qualified_name = ""  # the layer's name in the model, set by :func:`masked_template`
    # always present: masked_template only swaps in affine layers with running stats and a fixed momentum
    running_mean: Tensor
    running_var: Tensor
    momentum: float

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"BatchNorm expects (N, C, ...) input, got shape {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training and _BATCH_STATS.get():
            dims = (0, *range(2, x.dim()))
            var, mean = torch.var_mean(x, dim=dims, correction=0)
            scale = torch.rsqrt(var + self.eps) * self.weight
            return (x - mean.view(shape)) * scale.view(shape) + self.bias.view(shape)
        if not self.training:
            scale = torch.rsqrt(self.running_var + self.eps)
            return (x - self.running_mean.view(shape)) * (scale * self.weight).view(shape) + self.bias.view(shape)
        rows = _ROWS.get()
        if rows is None:
            raise RuntimeError("MaskedBatchNorm in training mode needs a bn_rows(mask, stats) scope")
        if self.qualified_name in rows.stats:
            raise RuntimeError(f"BatchNorm layer {self.qualified_name!r} ran twice in one step; the engine "
                               "supports each BatchNorm layer once per forward")
        mask = rows.mask
        if x.shape[0] != mask.shape[0]:
            # an encoder that folds items of a sample into the batch, sample-major (video frames:
            # (N, T, ...) -> (N·T, ...)): each item is valid where its sample is
            if x.shape[0] % mask.shape[0]:
                raise RuntimeError(f"BatchNorm layer {self.qualified_name!r} got {x.shape[0]} rows for "
                                   f"{mask.shape[0]} samples; expected a whole number of rows per sample")
            mask = mask.repeat_interleave(x.shape[0] // mask.shape[0])
        count = mask.sum() * (x[0, 0].numel())
        if rows.dense:  # the fused kernel; its saved statistics give the same record
            out, mean, rstd = torch.ops.aten.native_batch_norm(x, self.weight, self.bias, None, None, True, 0.0,
                                                               self.eps)
            var = (rstd.detach().double().pow(-2) - self.eps).to(mean.dtype)  # 1/rstd² − eps: digits kept in double
            rows.stats[self.qualified_name] = (mean.detach(), var * count / (count - 1).clamp(min=1), count)
            return out
        dims = (0, *range(2, x.dim()))
        w = mask.to(x.dtype).view(-1, *(1,) * (x.dim() - 1))
        denom = count.clamp(min=1)
        mean = (x * w).sum(dims) / denom
        centred = x - mean.view(shape)
        var = (centred.square() * w).sum(dims) / denom
        var = torch.where(count > 0, var, torch.ones_like(var))
        rows.stats[self.qualified_name] = (mean, var * count / (count - 1).clamp(min=1), count)
        return centred * (torch.rsqrt(var + self.eps) * self.weight).view(shape) + self.bias.view(shape)



def encode_rows(encode: Callable[[Tensor], Tensor], x: Tensor, mask: Tensor | None,
                stats: BNStats | None, training: bool, trim: bool = False) -> Tensor:
    """An encoder's features of ``x``; in training its BatchNorm layers count the rows where
    ``mask`` (a prefix mask) is 1 and record their statistics in ``stats``. ``trim`` (the per-run
    loop, never under ``vmap``): encode only the valid prefix and pad the features with zeros —
    every loss masks those rows, so the step is the same while a big encoder skips the padding's
    compute. Without a mask or ``stats`` the encoder runs as it is (a plain ``nn.BatchNorm`` uses
    every row; a :class:`MaskedBatchNorm` refuses to train outside a :func:`bn_rows` scope)."""
    if not training or mask is None or stats is None:
        return encode(x)
    if not trim:
        with bn_rows(mask, stats):
            return encode(x)
    n = max(1, min(int(mask.sum()), x.shape[0]))  # one valid row at least: an all-zero mask records count 0
    with bn_rows(mask[:n], stats, dense=True):
        u = encode(x[:n])
    if n == x.shape[0]:
        return u
    return torch.cat([u, u.new_zeros(x.shape[0] - n, *u.shape[1:])])


def masked_template(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the meta device (no storage: ``functional_call`` supplies every
    tensor) with each ``nn.BatchNorm1d/2d/3d`` replaced by :class:`MaskedBatchNorm`."""
    template = copy.deepcopy(model).to("meta")
    for prefix, module in list(template.named_modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and type(child) not in BATCHNORMS:
                raise ValueError(f"{type(child).__name__} is not supported by the vector engine "
                                 "(nn.BatchNorm1d/2d/3d only)")
            if type(child) in BATCHNORMS:
                if not (child.affine and child.track_running_stats and child.momentum is not None):
                    raise ValueError("the vector engine supports affine BatchNorm with running stats and a "
                                     "fixed momentum only")
                masked = MaskedBatchNorm(child.num_features, child.eps, child.momentum, device="meta")
                masked.qualified_name = f"{prefix}.{name}" if prefix else name
                setattr(module, name, masked)
    return template


def batchnorm_momenta(template: nn.Module) -> dict[str, float]:
    """The masked layers of a template: name -> momentum."""
    return {m.qualified_name: float(m.momentum) for m in template.modules() if isinstance(m, MaskedBatchNorm)}


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
