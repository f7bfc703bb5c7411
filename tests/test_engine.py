"""Run k of a K-run batch reproduces the same seed trained alone.

The reference is each seed alone: a one-run trainer on the per-run loop
(``InnerRun(ds, cfg, 1, "cpu", vectorize=False)``: plain ``grad`` of the same per-run loss,
no ``vmap``, no MLP kernel). So these tests check both "K runs batched = each run alone" and
"the batched step (``vmap`` / the kernel) = the unbatched loop".

Float32 trajectories of SGD with momentum amplify rounding (batched kernels sum in another
order; a ReLU or max-pool tie can flip after a few steps), so the long comparisons run in
float64, where the two paths agree to ~1e-14, and a short float32 check shows the default
dtype is fine too.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from mmrl_env.data.base import MultimodalDataset, TensorSplit
from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.engine.batch import VectorBatch, prefix_masks
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig

SEEDS = [0, 1, 2]
SIZES = [[32, 32], [48, 16], [20, 40]]  # run 0 plain, run 1 audio-heavy, run 2 video-heavy (B = 32)
RAW_SIZES = [[16, 16], [24, 8], [10, 20]]  # the same at B = 16: the CNN path is slow on CPU in float64
RTOL = 1e-5


def dataset(form: str = "features", dtype: torch.dtype = torch.float32) -> MultimodalDataset:
    ds = load_synthetic(n_train=192, n_val=48, n_test=48, form=form)
    for name in ("train", "val", "test"):
        split = getattr(ds, name)
        setattr(ds, name, TensorSplit([x.to(dtype) for x in split.inputs], split.labels))
    return ds


@pytest.fixture
def float64() -> Iterator[None]:
    """Models built while the default dtype is float64 get float64 parameters on both paths."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def config(batch_size: int = 32, **optim: object) -> InnerRunConfig:
    return InnerRunConfig(batch_size=batch_size, epochs=2,
                         optim=OptimConfig(lr=0.05, step_size=1, gamma=0.5, **optim))


def setup(form: str, dtype: torch.dtype = torch.float32) -> tuple[MultimodalDataset, InnerRunConfig, list[list[int]]]:
    if form == "raw":
        return dataset(form, dtype), config(16), RAW_SIZES
    return dataset(form, dtype), config(), SIZES


def rel_error(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest per-tensor max|a − b| / max|a| over a state dict."""
    assert a.keys() == b.keys()
    return max(((a[n].double() - b[n].double()).abs().max() / a[n].double().abs().max().clamp(min=1e-12)).item()
               for n in a)


def one_run_batch(split, sizes: list[int], batch_size: int) -> VectorBatch:
    """A crafted batch of one run: the first max(sizes) samples of ``split``, modality j on the
    first ``sizes[j]`` of them (what the trainer's ``make_batch`` builds from a window)."""
    n = max(sizes)
    idx = torch.arange(n)
    host = torch.tensor([sizes])
    return VectorBatch(idx[None], [split.gather(j, idx)[None] for j in range(len(sizes))],
                       split.gather_labels(idx)[None], host, prefix_masks(host, n), batch_size, host_sizes=host)


def alone(ds: MultimodalDataset, cfg: InnerRunConfig, vectorize: bool = False) -> InnerRun:
    """A trainer for one seed alone, stepped by the per-run loop (no vmap, no kernel) unless ``vectorize``."""
    return InnerRun(ds, cfg, 1, "cpu", vectorize=vectorize)


def run_steps(steps: list) -> object:
    """A hook recording one run's per-step loss and unimodal logits (its n_j valid rows each)."""
    def hook(batch, out) -> None:
        sizes = batch.sizes[0].tolist()
        steps.append((out.loss[0], [z[0, :n] for z, n in zip(out.unimodal_logits, sizes, strict=True)]))
    return hook


def single(ds: MultimodalDataset, cfg: InnerRunConfig, seed: int, sizes: list[int], iterations: int,
           vectorize: bool = False):
    """The reference: ``seed`` trained alone, with its per-step losses and unimodal logits."""
    tr = alone(ds, cfg, vectorize)
    tr.reset([seed])
    steps: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
    tr.train(iterations, [sizes], hooks=(run_steps(steps),))
    return tr, steps


def vector(ds: MultimodalDataset, cfg: InnerRunConfig, seeds: list[int], sizes: list[list[int]], iterations: int):
    vt = InnerRun(ds, cfg, len(seeds), "cpu")
    vt.reset(seeds)
    steps: list = []
    vt.train(iterations, sizes, hooks=(lambda b, out: steps.append((b, out)),))
    return vt, steps


@pytest.mark.parametrize(("form", "iterations"), [("features", 8), ("raw", 3)])
def test_run_k_reproduces_the_seed_trained_alone(float64: None, form: str, iterations: int) -> None:
    """Parameters, BatchNorm buffers, per-step losses, logits and predictions of every run;
    8 iterations of 6 per epoch cross an epoch end, so the per-run StepLR is covered too."""
    ds, cfg, sizes = setup(form, torch.float64)
    vt, vsteps = vector(ds, cfg, SEEDS, sizes, iterations)
    assert vt.epoch.tolist() == [iterations // vt.iterations_per_epoch] * 3
    for k, seed in enumerate(SEEDS):
        tr, steps = single(ds, cfg, seed, sizes[k], iterations)
        assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(k)) < RTOL
        assert vt.learner.lr_schedule.lr[k].item() == tr.learner.lr_schedule.lr[0].item()
        for (loss, logits), (batch, out) in zip(steps, vsteps, strict=True):
            torch.testing.assert_close(out.loss[k], loss, rtol=RTOL, atol=0)
            for j, z in enumerate(logits):
                n = z.shape[0]
                assert int(batch.sizes[k, j]) == n
                torch.testing.assert_close(out.unimodal_logits[j][k, :n], z, rtol=RTOL, atol=1e-9)
                assert torch.equal(batch.run_labels(k, j), tr.dataset.train.gather_labels(batch.windows[k, :n]))
        pred, y = tr.predict(tr.dataset.test)
        vpred, vy = vt.predict(vt.dataset.test)
        assert torch.equal(y[0], vy[k])  # labels (K, N): run k's row
        for got, want in [(vpred.fused[k], pred.fused[0]), (vpred.multi[k], pred.multi[0]),
                          *((vpred.unimodal[j][k], pred.unimodal[j][0]) for j in range(2))]:
            torch.testing.assert_close(got, want, rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize(("form", "iterations"), [("features", 5), ("raw", 2)])
def test_float32_matches_for_a_few_steps(form: str, iterations: int) -> None:
    """Features: against the per-run loop (the MLP kernel vs plain ``grad``). Raw: against the seed
    alone on the same batched step — in float32 the unbatched and the batched step round
    differently, and run 2's first step has a max-pool window whose two largest values differ by
    2e-7 (0.27673170 vs 0.27673188), so the two paths route that gradient to different inputs
    (float64 routes as the batched path); the float64 tests compare the CNN with the loop."""
    ds, cfg, sizes = setup(form)
    vt, _ = vector(ds, cfg, SEEDS, sizes, iterations)
    for k, seed in enumerate(SEEDS):
        tr, _ = single(ds, cfg, seed, sizes[k], iterations, vectorize=form == "raw")
        assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(k)) < RTOL


def test_adam_runs_match_each_seed_alone(float64: None) -> None:
    """Adam (per-run moments and step counts); its update itself is checked against torch.optim.Adam
    in tests/test_engine_optim.py."""
    ds, cfg = dataset("features", torch.float64), config(name="adam", weight_decay=1e-3)
    cfg.optim.lr = 1e-3
    vt, _ = vector(ds, cfg, SEEDS, SIZES, 8)
    for k, seed in enumerate(SEEDS):
        tr, _ = single(ds, cfg, seed, SIZES[k], 8)
        assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(k)) < RTOL


def test_runs_are_independent(float64: None) -> None:
    """Changing run 0's sizes (and with them the padded window length) leaves runs 1, 2 alone."""
    ds, cfg = dataset("features", torch.float64), config()
    a, _ = vector(ds, cfg, SEEDS, SIZES, 4)
    b, _ = vector(ds, cfg, SEEDS, [[64, 8], *SIZES[1:]], 4)
    assert rel_error(a.learner.stack.run_state_dict(0), b.learner.stack.run_state_dict(0)) > 1e-3
    for k in (1, 2):
        assert rel_error(a.learner.stack.run_state_dict(k), b.learner.stack.run_state_dict(k)) < 1e-12


@pytest.mark.parametrize("form", ["features", "raw"])
def test_a_run_trains_on_exactly_its_rows(form: str) -> None:
    """Run 0 has n_audio = n_min = 8: rows past them (here replaced by noise) change nothing,
    and its loss is the joint loss of exactly those 8 audio and 32 video rows."""
    ds, cfg = dataset(form), config()
    sizes = torch.tensor([[8, 32], [32, 32]])

    def step(noise: bool):
        vt = InnerRun(ds, cfg, 2, "cpu")
        vt.reset([0, 1])
        batch = vt.make_batch([vt.streams[k].next_window(32, 32) for k in range(2)], sizes)
        if noise:
            batch.inputs[0][0, 8:] = 100 * torch.randn_like(batch.inputs[0][0, 8:])
        return vt, batch, vt.learner.train_step(batch)

    clean_vt, batch, clean = step(False)
    noisy_vt, _, noisy = step(True)
    assert torch.equal(clean.loss[0], noisy.loss[0])
    noisy_state = noisy_vt.learner.stack.run_state_dict(0)
    for name, t in clean_vt.learner.stack.run_state_dict(0).items():
        assert torch.equal(t, noisy_state[name]), name
    # run 0 alone on the same window and sizes has the same loss; its unimodal terms by hand
    tr = alone(ds, cfg)
    tr.reset([0])
    single_batch = tr.make_batch([batch.windows[0, :32].clone()], torch.tensor([[8, 32]]))
    labels = [single_batch.run_labels(0, j) for j in range(2)]
    assert [y.shape[0] for y in labels] == [8, 32]
    z = [clean.unimodal_logits[j][0, :n] for j, n in enumerate((8, 32))]
    uni = sum(torch.nn.functional.cross_entropy(zj, y, reduction="sum") / 32 for zj, y in zip(z, labels, strict=True))
    out = tr.learner.train_step(single_batch)
    torch.testing.assert_close(out.loss[0], clean.loss[0], rtol=RTOL, atol=0)
    assert uni.item() * 0.2 < clean.loss[0].item()  # the fusion term adds to the unimodal ones


@pytest.mark.parametrize("form", ["features", "raw"])
def test_an_inactive_run_does_not_move(form: str) -> None:
    """After steps that fill its momentum, a resting run keeps parameters, momentum, BatchNorm
    buffers, lr and counters exactly (weight decay and momentum would otherwise move it)."""
    ds, cfg, sizes = setup(form)
    vt, _ = vector(ds, cfg, SEEDS, sizes, 2)
    before = vt.learner.state_dict()
    weights = [vt.learner.stack.run_state_dict(k) for k in range(3)]
    vt.train(3, sizes, active=torch.tensor([True, False, True]))
    b = cfg.batch_size
    vt.train_epoch([torch.arange(b + 8), None, torch.arange(2 * b + 6)])
    after = vt.learner.state_dict()
    for k in range(3):
        moved = [name for name, t in vt.learner.stack.run_state_dict(k).items() if not torch.equal(t, weights[k][name])]
        assert moved == [] if k == 1 else len(moved) == len(weights[k])
    for key, buf in before["optimizer"]["state"].items():
        assert buf[1].abs().sum() > 0 and torch.equal(buf[1], after["optimizer"]["state"][key][1])
    assert vt.iteration.tolist() == [2 + 3 + 2, 2, 2 + 3 + 3]
    assert vt.epoch.tolist() == [1, 0, 1]  # 6 or 12 iterations per epoch: only train_epoch ended one
    assert after["lr_schedule"]["lr"][1] == cfg.optim.lr


def test_train_epoch_reproduces_single_epochs_of_different_lengths(float64: None) -> None:
    """BSS: each run its own curriculum order and epoch length in one batched loop."""
    ds, cfg, _ = setup("raw", torch.float64)
    orders = [torch.randperm(192, generator=torch.Generator().manual_seed(k))[:n] for k, n in enumerate((35, 20, 48))]
    vt = InnerRun(ds, cfg, 3, "cpu")
    vt.reset(SEEDS)
    vloss = vt.train_epoch(orders)
    for k, seed in enumerate(SEEDS):
        tr = alone(ds, cfg)
        tr.reset([seed])
        loss = tr.train_epoch([orders[k]])
        torch.testing.assert_close(vloss[k], loss[0], rtol=RTOL, atol=0)
        assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(k)) < RTOL
        assert vt.iteration[k] == tr.iteration[0] and vt.epoch[k] == tr.epoch[0]


def test_reset_of_one_slot_starts_a_fresh_run(float64: None) -> None:
    """Autoreset: slot 1 restarts with seed 7 and then follows seed 7 trained alone; the
    other slots carry on as if nothing happened."""
    ds, cfg = dataset("features", torch.float64), config()
    vt, _ = vector(ds, cfg, SEEDS, SIZES, 3)
    untouched, _ = vector(ds, cfg, SEEDS, SIZES, 6)
    vt.reset([7], runs=[1])
    assert vt.iteration.tolist() == [3, 0, 3]
    vt.train(3, SIZES)
    tr, _ = single(ds, cfg, 7, SIZES[1], 3)
    assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(1)) < RTOL
    for k in (0, 2):
        assert rel_error(untouched.learner.stack.run_state_dict(k), vt.learner.stack.run_state_dict(k)) < 1e-12


def test_resume_equals_uninterrupted() -> None:
    ds, cfg, sizes = setup("raw")
    vt, _ = vector(ds, cfg, SEEDS, sizes, 2)
    state = vt.state_dict()
    vt.train(3, sizes)
    resumed = InnerRun(ds, cfg, 3, "cpu")
    resumed.load_state_dict(state)
    resumed.train(3, sizes)
    for k in range(3):
        want = vt.learner.stack.run_state_dict(k)
        for name, t in resumed.learner.stack.run_state_dict(k).items():
            assert torch.equal(t, want[name]), name
    assert torch.equal(vt.iteration, resumed.iteration)


def test_bad_input_is_refused() -> None:
    ds = dataset()
    with pytest.raises(KeyError, match="unknown learner"):
        InnerRun(ds, InnerRunConfig(learner="nope"), 2, "cpu")
    vt = InnerRun(ds, config(), 2, "cpu")
    with pytest.raises(ValueError, match="one seed per run"):
        vt.reset([0])
    vt.reset([0, 1])
    with pytest.raises(ValueError, match=r"shape \(runs, modalities\)"):
        vt.train(1, [32, 32])
    with pytest.raises(ValueError, match="pass None"):
        vt.train_epoch([torch.arange(10)])


def test_a_run_without_common_rows_leaves_the_fusion_head_alone(float64: None) -> None:
    """DUS with n_min = 0: a modality with n_j = 0 leaves no row common to all modalities, so there
    is no fusion loss and the fusion head must not move (``torch.optim`` skips a parameter without
    gradient: no weight decay, no momentum). Run 1 of the batch has such steps between ordinary
    ones and must match the seed alone, whose fusion head is checked to rest on those steps."""
    ds, cfg = dataset("features", torch.float64), config()
    mixed = [[32, 32], [32, 32], [48, 0], [48, 0], [32, 32]]  # steps with and without common rows
    vt = InnerRun(ds, cfg, 2, "cpu")
    vt.reset([0, 1])
    tr = alone(ds, cfg)
    tr.reset([1])
    for step in mixed:
        fusion = {n: t for n, t in tr.learner.run_state_dict(0).items() if n.startswith("fusion.")}
        vt.train(1, [[32, 32], step])
        tr.train(1, [step])
        rested = all(torch.equal(t, tr.learner.run_state_dict(0)[n]) for n, t in fusion.items())
        assert rested == (min(step) == 0)
    assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(1)) < RTOL
