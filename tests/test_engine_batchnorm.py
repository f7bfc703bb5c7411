"""The engine's masked BatchNorm equals ``nn.BatchNorm1d/2d/3d`` on the valid rows, train and eval."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from mmrl_env.engine.batchnorm import MaskedBatchNorm, bn_rows, encode_rows, masked_template, update_running_stats

SHAPES = {1: (), 2: (3, 3), 3: (2, 3, 3)}  # the extra dims after (N, C) of a BatchNorm{1,2,3}d input
LAYERS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def reference(seed: int, dims: int = 2) -> nn.modules.batchnorm._BatchNorm:
    torch.manual_seed(seed)
    bn = LAYERS[dims](4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return bn


def test_all_rows_valid_matches_batchnorm2d_train_and_eval() -> None:
    bn = reference(0)
    masked = masked_template(nn.Sequential(bn))[0]
    assert isinstance(masked, MaskedBatchNorm) and masked.qualified_name == "0"
    params, buffers = stack_module_state([bn])
    params = {k.removeprefix("0."): v.detach() for k, v in params.items()}
    buffers = {k.removeprefix("0."): v for k, v in buffers.items()}
    x = 3 * torch.randn(1, 10, 4, 5, 5) + 1
    masked.train()

    def train_forward(p, b, xs, mask):
        stats: dict = {}
        with bn_rows(mask, stats):
            y = functional_call(masked, (p, b), (xs,))
        return y, stats

    for _ in range(3):  # three steps: the running statistics accumulate the same way
        y, stats = vmap(train_forward)(params, buffers, x, torch.ones(1, 10))
        mean, var, count = stats["0"]
        step = torch.tensor([True])
        update_running_stats({f"m.{k}": v for k, v in buffers.items()}, "m", bn.momentum, (mean, var, count), step)
        torch.testing.assert_close(y[0], bn.train()(x[0]), rtol=1e-5, atol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(buffers[name][0], getattr(bn, name), rtol=1e-5, atol=1e-6)
    masked.eval()
    y = vmap(lambda p, b, xs: functional_call(masked, (p, b), (xs,)))(params, buffers, x)
    torch.testing.assert_close(y[0], bn.eval()(x[0]), rtol=1e-5, atol=1e-5)


def test_encode_rows_without_a_mask_runs_the_encoder_as_it_is() -> None:
    """A plain ``nn.BatchNorm`` model trained outside the engine (no mask) uses every row; a
    masked template without a mask says it needs a row scope."""
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    x = torch.randn(6, 3)
    expected = plain(x)
    assert torch.equal(encode_rows(plain, x, None, None, training=True), expected)
    masked = masked_template(plain)
    state = dict(plain.named_parameters()) | dict(plain.named_buffers())
    with pytest.raises(RuntimeError, match="bn_rows"):
        encode_rows(lambda v: functional_call(masked, state, (v,)), x, None, None, training=True)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 3, 7])
def test_masked_rows_are_ignored(n: int, dims: int) -> None:
    """Statistics over the first n rows only; output rows < n equal BatchNorm{1,2,3}d on x[:n];
    the padding rows' values do not matter. A zero mask leaves the running statistics alone."""
    bn = reference(1, dims).train()
    masked = masked_template(nn.Sequential(bn))[0].train()
    state = {k: v.detach().clone() for k, v in bn.state_dict().items()}
    x = torch.randn(8, 4, *SHAPES[dims])
    x[n:] = 1e3 * torch.randn(8 - n, 4, *SHAPES[dims])
    mask = (torch.arange(8) < n).float()
    stats: dict = {}
    with bn_rows(mask, stats):
        y = functional_call(masked, state, (x,))
    if n > 1:  # nn.BatchNorm2d refuses one value per channel in training; ours just uses it
        torch.testing.assert_close(y[:n], bn(x[:n]), rtol=1e-5, atol=1e-5)
        mean, var, count = stats["0"]
        stacked = {f"m.{k}": v.unsqueeze(0).clone() for k, v in state.items()}
        update_running_stats(stacked, "m", bn.momentum, (mean[None], var[None], count[None]), torch.tensor([True]))
        torch.testing.assert_close(stacked["m.running_var"][0], bn.running_var, rtol=1e-5, atol=1e-6)
    stats = {}
    with bn_rows(torch.zeros(8), stats):
        assert torch.isfinite(functional_call(masked, state, (x,))).all()
    stacked = {f"m.{k}": v.unsqueeze(0).clone() for k, v in state.items()}
    mean, var, count = stats["0"]
    update_running_stats(stacked, "m", bn.momentum, (mean[None], var[None], count[None]), torch.tensor([True]))
    for k, v in state.items():
        assert torch.equal(stacked[f"m.{k}"][0], v)


def test_training_forward_needs_a_row_scope_and_other_norms_are_refused() -> None:
    masked = masked_template(nn.Sequential(nn.BatchNorm2d(2)))[0]
    state = {k: torch.ones(2) if "running" in k else torch.tensor(0) for k, _ in masked.named_buffers()}
    state |= {k: torch.ones(2) for k, _ in masked.named_parameters()}
    with pytest.raises(RuntimeError, match="bn_rows"):
        functional_call(masked.train(), state, (torch.randn(4, 2, 3, 3),))
    with pytest.raises(ValueError, match="SyncBatchNorm is not supported"):
        masked_template(nn.Sequential(nn.SyncBatchNorm(3)))
    with pytest.raises(ValueError, match="affine BatchNorm"):
        masked_template(nn.Sequential(nn.BatchNorm3d(3, affine=False)))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_dense_rows_take_the_native_kernel_with_the_same_results(dims: int) -> None:
    """``bn_rows(dense=True)`` (every row valid: the per-run loop's trimmed batch) computes the
    same output, gradients and recorded statistics as the masked ops."""
    bn = reference(2, dims)
    masked = masked_template(nn.Sequential(bn))[0].train()
    state = {k: v.detach().clone().requires_grad_(v.is_floating_point() and "running" not in k)
             for k, v in bn.state_dict().items()}
    x = 2 * torch.randn(6, 4, *SHAPES[dims]) + 0.5
    results = []
    for dense in (False, True):
        stats: dict = {}
        with bn_rows(torch.ones(6), stats, dense=dense):
            y = functional_call(masked, state, (x,))
        grads = torch.autograd.grad((y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum(),
                                    [state["weight"], state["bias"]])
        results.append((y, grads, stats["0"]))
    (y0, g0, s0), (y1, g1, s1) = results
    torch.testing.assert_close(y1, y0, rtol=1e-5, atol=1e-5)
    for a, b in zip((*g0, *s0), (*g1, *s1), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


class FramesEncoder(nn.Module):
    """A video encoder's shape: (N, T, C, H, W) frames folded into the batch for a 2-D network
    (as ``ResNetEncoder``), features averaged over the frames."""

    def __init__(self, bn: nn.Module) -> None:
        super().__init__()
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        return self.bn(x.flatten(0, 1)).unflatten(0, (n, t)).mean(dim=(1, 3, 4))


@pytest.mark.parametrize("batched", [False, True])
def test_frames_folded_into_the_batch_follow_their_samples_mask(batched: bool) -> None:
    """The mask is per sample (N rows) while the layer sees N·T rows: the statistics are those of
    the valid samples' frames, as ``nn.BatchNorm2d`` on those frames alone (plain call and under vmap)."""
    bn = reference(2).train()
    model = FramesEncoder(bn)
    template = masked_template(model).train()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n, t = 3, 4
    x = torch.randn(6, t, 4, 3, 3)
    x[n:] = 1e3 * torch.randn(6 - n, t, 4, 3, 3)  # padding samples: must not count
    mask = (torch.arange(6) < n).float()

    def forward(params, xs, m):
        stats: dict = {}
        with bn_rows(m, stats):
            y = functional_call(template, params, (xs,))
        return y, stats

    if batched:
        params = {k: v.unsqueeze(0) for k, v in state.items()}
        y, stats = vmap(forward)(params, x.unsqueeze(0), mask.unsqueeze(0))
        y, stats = y[0], {k: tuple(s[0] for s in v) for k, v in stats.items()}
    else:
        y, stats = forward(state, x, mask)
    torch.testing.assert_close(y[:n], model(x[:n]), rtol=1e-5, atol=1e-5)
    mean, var, count = stats["bn"]
    assert count.item() == n * t * 9
    torch.testing.assert_close(mean, x[:n].flatten(0, 1).mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    with pytest.raises(RuntimeError, match="whole number of rows per sample"):
        forward(state, torch.randn(7, 2, 4, 3, 3), torch.ones(5))  # 14 rows for 5 samples
    stats = {}
    with bn_rows(torch.ones(n), stats, dense=True):  # the per-run loop's trimmed rows: the native kernel
        y = functional_call(template, state, (x[:n],))
    torch.testing.assert_close(y, model(x[:n]), rtol=1e-5, atol=1e-5)
    assert stats["bn"][2].item() == n * t * 9
