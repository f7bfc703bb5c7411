"""The two ways of mapping a step over the runs give the same K runs: ``vectorize=True`` (``vmap``,
or the joint learner's MLP kernel) and ``vectorize=False`` (a per-run loop of plain ``grad`` that
also trims each run's padding rows before the encoders, ``engine/batchnorm.encode_rows``).

Every learner, Synthetic features and the small CNN with BatchNorm (``form="raw"``), DUS-style
unequal sizes: run 1 has no audio row at all (so no common row: no fused sample), runs 0 and 2
pad differently. Float64, where the two paths agree to summation order.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_engine import config, dataset, float64, rel_error  # noqa: F401  (float64: fixture)

from mmrl_env.engine.runs import loop_runs
from mmrl_env.inner_run import InnerRun

SEEDS = [0, 1, 2]
CASES = {"features": ([[32, 32], [0, 40], [48, 16]], 32, 7),  # sizes, B, iterations (an epoch is 6)
         "raw": ([[16, 16], [0, 20], [24, 8]], 16, 2)}
LEARNERS = {"joint": {}, "ogm_ge": {}, "ogm_ge-joint": {"variant": "joint", "alpha": 0.3},
            "mla": {"project": "gs"}, "boosting": {"check_every": 1, "omega_steps": 5, "tau": 0.0}}


def trained(form: str, learner: str, kwargs: dict[str, Any], vectorize: bool):
    sizes, batch_size, iterations = CASES[form]
    cfg = config(batch_size)
    cfg.learner, cfg.learner_kwargs = learner.split("-")[0], dict(kwargs)
    vt = InnerRun(dataset(form, torch.float64), cfg, len(SEEDS), "cpu", vectorize=vectorize)
    vt.reset(SEEDS)
    steps: list = []
    vt.train(iterations, sizes, hooks=(lambda b, out: steps.append((b.sizes.clone(), out)),))
    return vt, steps


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("form", list(CASES))
@pytest.mark.parametrize("learner", list(LEARNERS))
def test_the_loop_equals_the_batched_step(form: str, learner: str) -> None:
    looped, loop_steps = trained(form, learner, LEARNERS[learner], vectorize=False)
    batched, batch_steps = trained(form, learner, LEARNERS[learner], vectorize=True)
    assert looped.learner.stack.template.trim_rows and not batched.learner.stack.template.trim_rows
    for k in range(len(SEEDS)):
        assert rel_error(batched.learner.run_state_dict(k), looped.learner.run_state_dict(k)) < 1e-9, k
        assert batched.run_info(k).keys() == looped.run_info(k).keys()
    for (sizes, a), (_, b) in zip(batch_steps, loop_steps, strict=True):
        torch.testing.assert_close(a.loss, b.loss, rtol=1e-6, atol=1e-12)  # the MLP kernel's loss value is float32
        for j, (za, zb) in enumerate(zip(a.unimodal_logits, b.unimodal_logits, strict=True)):
            for k, n in enumerate(sizes[:, j].tolist()):  # the valid rows; the rest is padding
                torch.testing.assert_close(za[k, :n], zb[k, :n], rtol=1e-9, atol=1e-12)
    pa, ya = batched.predict(batched.dataset.test)
    pb, yb = looped.predict(looped.dataset.test)
    assert torch.equal(ya, yb)
    torch.testing.assert_close(pa.fused, pb.fused, rtol=1e-9, atol=1e-12)
    for za, zb in zip(pa.unimodal, pb.unimodal, strict=True):
        torch.testing.assert_close(za, zb, rtol=1e-9, atol=1e-12)
    if learner == "boosting" and form == "features":
        assert batched.learner.counts.sum() > 6  # ACA added classifiers on both paths (same counts)
        assert torch.equal(batched.learner.counts, looped.learner.counts)


def test_loop_runs_maps_like_vmap() -> None:
    """``loop_runs``: arguments with in_dims 0 are indexed per run, the others shared; outputs
    (a pytree) stacked on a new leading axis, as ``vmap`` does."""
    x, w = torch.randn(4, 3), torch.randn(3)

    def fn(row: torch.Tensor, shared: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return row @ shared, {"twice": 2 * row}

    looped = loop_runs(fn, (0, None), (x, w))
    batched = torch.func.vmap(fn, in_dims=(0, None))(x, w)
    torch.testing.assert_close(looped[0], batched[0])
    torch.testing.assert_close(looped[1]["twice"], batched[1]["twice"])
    with pytest.raises(ValueError, match="at least one argument"):
        loop_runs(fn, (None, None), (x, w))


@pytest.mark.usefixtures("float64")
def test_channels_last_on_the_loop_changes_the_layout_not_the_run() -> None:
    """The per-run loop may run the convolutions channels-last (its default on CUDA): the weights
    reach the convolutions in that layout, and the runs are the same as contiguous ones."""
    sizes, batch_size, iterations = CASES["raw"]
    cfg = config(batch_size)
    runs = []
    for channels_last in (False, True):
        vt = InnerRun(dataset("raw", torch.float64), cfg, len(SEEDS), "cpu", vectorize=False)
        vt.reset(SEEDS)
        vt.learner.set_vectorize(False, channels_last=channels_last)
        weights = vt.learner.stack.unflatten(vt.learner.stack.flat[0])
        conv = [n for n in vt.learner.stack.conv_weights if weights[n].shape[1] > 1][0]  # 1 channel: both layouts
        assert weights[conv].is_contiguous(memory_format=torch.channels_last) == channels_last
        vt.train(iterations, sizes)
        runs.append(vt.learner.stack.flat.clone())
    assert rel_error({"flat": runs[0]}, {"flat": runs[1]}) < 1e-9
    with pytest.raises(ValueError, match="per-run loop only"):
        vt.learner.set_vectorize(True, channels_last=True)
