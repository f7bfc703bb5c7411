"""Every learner inside the DUS and BSS envs, on three modalities, and reproducibly."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from test_engine import one_run_batch

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_env.data.base import ModalitySpec, MultimodalDataset, TensorSplit
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig
from mmrl_env.learners.boosting import BoostingLearner
from mmrl_env.learners.mla import MLALearner

LEARNERS = {"joint": {}, "ogm_ge": {}, "mla": {"project": True}, "boosting": {"check_every": 1, "tau": 0.0}}
SMALL = {"n_train": 400, "n_val": 100, "n_test": 100}
ACTIONS = {"DUS": np.array([1.0, -1.0], np.float32), "BSS": np.array([0.0], np.float32)}


@pytest.mark.parametrize("method", ["DUS", "BSS"])
@pytest.mark.parametrize("learner", list(LEARNERS))
def test_learner_inside_env(method, learner):
    env = gymnasium.make(f"{method}-Synthetic", learner=learner, learner_kwargs=LEARNERS[learner], epochs=2,
                         dataset_kwargs=SMALL, device="cpu")
    obs, info = env.reset(seed=0)
    terminated, steps = False, 0
    while not terminated:
        obs, reward, terminated, truncated, info = env.step(ACTIONS[method])
        assert np.isfinite(reward) and env.observation_space.contains(obs) and not info["diverged"]
        steps += 1
    if method == "DUS":
        assert info["n"]["audio"] != info["n"]["video"]  # unequal n_j really reached the learner
    assert 0.0 <= info["test"]["fused_acc"] <= 1.0 and "video_map" in info["test"]
    if learner == "boosting":
        assert sum(info["classifiers"].values()) >= 3  # ACA ran (T = 1, τ = 0; after epoch 1 of 2) and added one
        assert set(info["omega"]) == {"audio", "video"}
    env.close()


def three_modalities(n: int = 96, k: int = 4, seed: int = 0) -> MultimodalDataset:
    """Three feature modalities, the third one the most informative."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(3, k, 8, generator=g)

    def split(m: int) -> TensorSplit:
        y = torch.randint(0, k, (m,), generator=g)
        xs = [protos[j, y] * (0.5 + j) + torch.randn(m, 8, generator=g) for j in range(3)]
        return TensorSplit(xs, y)

    mlp = {"in_dim": 8, "hidden": 16, "out_dim": 16}
    specs = tuple(ModalitySpec(name, "mlp", mlp) for name in ("rgb", "of", "depth"))
    return MultimodalDataset("Tri", specs, k, split(n), split(32), split(32))


@pytest.mark.parametrize("learner", list(LEARNERS))
def test_three_modalities_with_unequal_quantities(learner):
    data = three_modalities()
    cfg = InnerRunConfig(batch_size=16, epochs=2, learner=learner, learner_kwargs=LEARNERS[learner])
    trainer = InnerRun(data, cfg, 1, "cpu")
    trainer.reset([0])
    seen = []
    loss = trainer.train(trainer.total_iterations, [[8, 16, 24]], hooks=(lambda b, o: seen.append((b, o)),))
    assert torch.isfinite(loss).all() and trainer.epoch.tolist() == [2]
    batch, out = seen[0]
    assert batch.sizes.tolist() == [[8, 16, 24]] and batch.masks.sum(-1).tolist() == [[8, 16, 24]]
    assert [tuple(z.shape) for z in out.unimodal_logits] == [(1, 24, 4)] * 3  # the window; valid rows: the sizes
    pred, y = trainer.predict(data.test)
    assert pred.fused.shape == (1, 32, 4) and len(pred.unimodal) == 3
    if learner == "boosting":
        assert set(trainer.run_info(0)["classifiers"]) == {"rgb", "of", "depth"}


@pytest.mark.parametrize("rule", ["cover", "onehot"])
def test_boosting_every_added_classifier_receives_gradient(rule):
    """Scores [0.9, 0.5, 0.45]: ACA adds to modalities 1 AND 2; both new classifiers must train.

    The paper's one-hot target (the weakest only) leaves modality 1's ω ≈ 0 and so its new
    classifier without gradient: kept as an option, it must show exactly that failure."""
    data = three_modalities()
    # no weight decay, fresh momentum: a new classifier's first update is −lr·gradient (lr = 1: little rounding)
    optim = OptimConfig(lr=1.0, weight_decay=0.0)
    learner = BoostingLearner(data, optim, torch.device("cpu"), [torch.Generator().manual_seed(0)], omega_target=rule)
    assert learner.assign(torch.tensor([True]), torch.tensor([[0.9, 0.5, 0.45]])) == [[1, 2]]
    assert learner.counts.tolist() == [[1, 2, 2]]
    before = {r: learner.stack.params[f"slots.{r}.0.weight"][0].clone() for r in (1, 2)}
    learner.train_step(one_run_batch(data.train, [32, 32, 32], 32))
    norms = [((learner.stack.params[f"slots.{r}.0.weight"][0] - before[r]) / optim.lr).norm().item() for r in (1, 2)]
    if rule == "cover":
        assert learner.omega[0, 1:].tolist() == pytest.approx([1.0, 1.0], abs=0.05)
        assert min(norms) > 0.25 * max(norms) > 0
    else:
        assert norms[0] < 1e-3 * norms[1]


def test_mla_projection_on_three_modalities():
    data = three_modalities()
    learner = MLALearner(data, OptimConfig(), torch.device("cpu"), [torch.Generator().manual_seed(0)], project="batch")
    grads = []
    step, (lo, hi) = learner.step_group, learner.head_cols

    def logged_step(name, g, gate):
        if name == "head":  # the head's gradient as each modality's step applies it
            grads.append(g[0, lo:hi].clone())
        return step(name, g, gate)

    learner.step_group = logged_step
    learner.train_step(one_run_batch(data.train, [16, 16, 16], 16))
    assert len(grads) == 3
    for i in range(2):
        assert abs(torch.dot(grads[2], grads[i]).item()) < 1e-5 * grads[2].norm() * grads[i].norm() + 1e-9


@pytest.mark.parametrize("learner", list(LEARNERS))
def test_same_seed_same_result(learner):
    def run(global_seed: int) -> torch.Tensor:
        data = three_modalities()
        trainer = InnerRun(data, InnerRunConfig(batch_size=16, epochs=2, learner=learner,
                                                    learner_kwargs=LEARNERS[learner]), 1, "cpu")
        torch.manual_seed(global_seed)  # SB3 seeds torch globally: that must not matter
        trainer.reset([7])
        trainer.train(trainer.total_iterations, [[16, 8, 16]])
        return trainer.predict(data.test)[0].fused

    assert torch.equal(run(123), run(456))
