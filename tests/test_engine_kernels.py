"""The explicit MLP kernel computes exactly the generic ``vmap(grad_and_value(...))`` step:
losses, the flat gradient and the unimodal logits, for ragged DUS sizes (per-modality row
limits), empty modalities and resting runs; it steps aside where it does not apply."""

from __future__ import annotations

import pytest
import torch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig
from mmrl_env.learners.joint import JointLearner

SIZES = {
    "ragged": [[32, 32], [48, 16], [20, 40], [8, 56]],
    "empty modality": [[0, 32], [0, 16], [0, 40], [0, 8]],  # N_audio = 0, no common rows
    "resting run": [[32, 32], [0, 0], [12, 52], [40, 24]],
}


def trainer(fusion: str = "concat", dtype: torch.dtype = torch.float64) -> InnerRun:
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        ds = load_synthetic(n_train=192, n_val=48, n_test=48)
        for name in ("train", "val", "test"):
            split = getattr(ds, name)
            split.inputs = [x.to(dtype) for x in split.inputs]
        cfg = InnerRunConfig(batch_size=32, epochs=2, learner_kwargs={"fusion": fusion},
                            optim=OptimConfig(lr=0.05, step_size=1, gamma=0.5))
        vt = InnerRun(ds, cfg, 4, "cpu")
        vt.reset([0, 1, 2, 3])
    finally:
        torch.set_default_dtype(before)
    return vt


def both_paths(vt: InnerRun, sizes: list[list[int]]):
    sizes_t = torch.tensor(sizes)
    batch = vt.make_batch([vt.streams[k].next_window(max(1, int(sizes_t[k].max())), 32) for k in range(4)], sizes_t)
    learner = vt.learner
    assert learner._kernel is not None
    fast = learner.loss_and_grads(batch)
    kernel, learner._kernel = learner._kernel, None
    try:
        slow = learner.loss_and_grads(batch)
    finally:
        learner._kernel = kernel
    return batch, fast, slow


@pytest.mark.parametrize("fusion", ["concat", "sum"])
@pytest.mark.parametrize("case", list(SIZES))
def test_kernel_equals_the_vmap_step(case: str, fusion: str) -> None:
    vt = trainer(fusion)
    batch, (g_fast, loss_fast, z_fast, _), (g_slow, loss_slow, z_slow, _) = both_paths(vt, SIZES[case])
    assert g_fast.shape == g_slow.shape == vt.learner.stack.flat.shape
    scale = g_slow.abs().amax(dim=1, keepdim=True).clamp(min=1e-30)
    assert ((g_fast - g_slow).abs() / scale).max() < 1e-12  # float64 parameters: exact up to summation order
    torch.testing.assert_close(loss_fast, loss_slow, rtol=1e-6, atol=0)  # the loss itself is float32
    for j, (zf, zs) in enumerate(zip(z_fast, z_slow, strict=True)):
        assert zf.shape == zs.shape
        valid = batch.masks[:, j].bool()
        torch.testing.assert_close(zf[valid], zs[valid], rtol=1e-12, atol=1e-12)
    if case == "resting run":
        assert torch.equal(g_fast[1], torch.zeros_like(g_fast[1]))


def test_training_with_the_kernel_follows_the_vmap_path() -> None:
    """Several full steps (optimizer included) on both paths end at the same weights."""
    fast, slow = trainer(), trainer()
    slow.learner._kernel = None
    sizes = SIZES["resting run"]
    fast.train(5, sizes)
    slow.train(5, sizes)
    for k in range(4):
        a, b = fast.learner.stack.run_state_dict(k), slow.learner.stack.run_state_dict(k)
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-10, atol=1e-12)


def test_kernel_under_bf16_autocast_is_as_close_to_float32_as_the_vmap_path() -> None:
    """The CUDA path runs the kernel under bf16 autocast (the learners' CUDA setting); here on the
    CPU's autocast. Both bf16 steps round differently, so each is compared with the float32
    step: the kernel's error is of the vmap path's size (a missing or wrong gradient term
    would be orders larger)."""
    vt = trainer(dtype=torch.float32)
    _, (g_ref, loss_ref, _, _), _ = both_paths(vt, SIZES["ragged"])
    vt = trainer(dtype=torch.float32)
    vt.learner.amp = True
    _, (g_fast, loss_fast, _, _), (g_slow, loss_slow, _, _) = both_paths(vt, SIZES["ragged"])

    def error(g: torch.Tensor) -> float:
        return ((g - g_ref).norm(dim=1) / g_ref.norm(dim=1)).max().item()

    assert error(g_fast) < 2 * error(g_slow) + 1e-3 and error(g_fast) < 0.1
    torch.testing.assert_close(loss_fast, loss_ref, rtol=2e-2, atol=0)


def test_kernel_steps_aside_for_other_losses_and_models() -> None:
    """A subclass that changes the loss, and the small CNN, get the generic vmap path."""

    class OtherLoss(JointLearner):
        def _loss(self, *args, **kwargs):  # pragma: no cover - only its presence matters
            return super()._loss(*args, **kwargs)

    ds = load_synthetic(n_train=64, n_val=16, n_test=16)
    gens = [torch.Generator().manual_seed(0)]
    assert JointLearner(ds, OptimConfig(), torch.device("cpu"), gens)._kernel is not None
    assert OtherLoss(ds, OptimConfig(), torch.device("cpu"), gens)._kernel is None
    raw = load_synthetic(n_train=64, n_val=16, n_test=16, form="raw")
    assert JointLearner(raw, OptimConfig(), torch.device("cpu"), gens)._kernel is None
    film = JointLearner(ds, OptimConfig(), torch.device("cpu"), gens, fusion="film")
    assert film._kernel is None
