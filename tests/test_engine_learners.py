"""``ogm_ge``, ``mla`` and ``boosting`` on the run axis: run k of a K-run batch = the single learner
with run k's seed and sizes (parameters, losses, logits, predictions, learner info and the
private generator's state — so every random draw happened as in the single run), in float64
over steps that cross epoch ends (LR schedule, OGM-GE's window, MLA's batch index, ACA/ω)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_engine import SEEDS, SIZES, config, dataset, float64, rel_error  # noqa: F401  (float64: fixture)

from mmrl_env.engine import VectorTrainer
from mmrl_env.engine.trainer import VECTOR_LEARNERS
from mmrl_env.learners import learner_class
from mmrl_env.trainer import InnerTrainer, TrainerConfig

RTOL = 1e-5
EDGE_SIZES = [[32, 32], [0, 24], [20, 40]]  # run 1: no audio row, hence no common row (no fused sample)


def learner_config(learner: str, kwargs: dict[str, Any], batch_size: int = 32) -> TrainerConfig:
    cfg = config(batch_size)
    cfg.learner, cfg.learner_kwargs = learner, dict(kwargs)
    return cfg


def run_state(vt: VectorTrainer, k: int) -> dict[str, torch.Tensor]:
    learner = vt.learner
    return learner.run_state_dict(k) if hasattr(learner, "run_state_dict") else learner.stack.run_state_dict(k)


def compare(learner: str, kwargs: dict[str, Any], sizes: list[list[int]], iterations: int,
            form: str = "features", check: Callable[[VectorTrainer, InnerTrainer, int], None] | None = None) -> None:
    """Train K runs batched and each one alone; everything observable must agree."""
    ds = dataset(form, torch.float64)
    cfg = learner_config(learner, kwargs, 32 if form == "features" else 16)
    vt = VectorTrainer(ds, cfg, len(SEEDS), "cpu")
    vt.reset(SEEDS)
    vsteps: list = []
    vt.train(iterations, sizes, hooks=(lambda b, out: vsteps.append((b, out)),))
    vpred, vy = vt.predict(vt.dataset.test)
    for k, seed in enumerate(SEEDS):
        tr = InnerTrainer(ds, cfg, "cpu")
        tr.reset(seed)
        steps: list = []
        tr.train(iterations, sizes[k], hooks=(lambda b, out, s=steps: s.append((out.loss, out.unimodal_logits)),))
        assert vt.epoch[k] == tr.epoch and vt.iteration[k] == tr.iteration
        assert torch.equal(vt.generators[k].get_state(), tr.generator.get_state()), "random draws differ"
        assert rel_error(tr.learner.model.state_dict(), run_state(vt, k)) < RTOL
        assert vt.learner.scheduler.lr[k].item() == pytest.approx(tr.learner.scheduler.get_last_lr()[0], rel=1e-12)
        for (loss, logits), (batch, out) in zip(steps, vsteps, strict=True):
            torch.testing.assert_close(out.loss[k], loss.to(out.loss.dtype), rtol=RTOL, atol=1e-9)
            for j, z in enumerate(logits):
                n = z.shape[0]
                assert int(batch.sizes[k, j]) == n
                torch.testing.assert_close(out.unimodal_logits[j][k, :n], z, rtol=RTOL, atol=1e-9)
        pred, y = tr.predict(tr.dataset.test)
        assert torch.equal(y, vy)
        torch.testing.assert_close(vpred.fused[k], pred.fused, rtol=RTOL, atol=1e-9)
        for j in range(2):
            torch.testing.assert_close(vpred.unimodal[j][k], pred.unimodal[j], rtol=RTOL, atol=1e-9)
        assert (vpred.multi is None) == (pred.multi is None)
        if pred.multi is not None:
            torch.testing.assert_close(vpred.multi[k], pred.multi, rtol=RTOL, atol=1e-9)
        info, vinfo = tr.learner.info(), vt.run_info(k)
        assert info.keys() == vinfo.keys()
        for key, value in info.items():
            assert value == pytest.approx(vinfo[key], rel=1e-5, abs=1e-9), key
        if check is not None:
            check(vt, tr, k)


def test_every_learner_is_batched_with_the_single_learners_kwargs() -> None:
    """Same keyword names and defaults as the single learner (the trainer validates against it)."""
    assert {"joint", "ogm_ge", "mla"} <= set(VECTOR_LEARNERS)
    for name, cls in VECTOR_LEARNERS.items():
        own = {n: p.default for n, p in inspect.signature(learner_class(name).__init__).parameters.items()
               if p.default is not p.empty}
        ported = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
                  if p.default is not p.empty}
        assert ported == own, name


# --- OGM-GE ---------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # a run that never steps
@pytest.mark.parametrize(("kwargs", "sizes"), [
    ({}, SIZES),  # published, GE on, window "auto" = epochs [0, 1]: modulation throughout
    ({"modulation_epochs": (0, 0)}, EDGE_SIZES),  # the window closes at the epoch end; a run without common rows
    ({"variant": "joint", "alpha": 0.3, "fusion": "sum"}, EDGE_SIZES),
])
@pytest.mark.usefixtures("float64")
def test_ogm_ge_run_k_reproduces_the_single_learner(kwargs: dict[str, Any], sizes: list[list[int]]) -> None:
    modulated: list[bool] = []

    def check(vt: VectorTrainer, tr: InnerTrainer, k: int) -> None:
        torch.testing.assert_close(vt.learner.last_coeff[k], tr.learner.last_coeff.double(), rtol=1e-5, atol=0)
        modulated.append(bool((tr.learner.last_coeff < 1).any()))

    compare("ogm_ge", kwargs, sizes, 8, check=check)
    if "modulation_epochs" in kwargs:
        assert not any(modulated)  # epoch 1 is past the window: coefficients back to 1
    else:
        assert any(modulated)  # the test did exercise the modulation


@pytest.mark.usefixtures("float64")
def test_ogm_ge_cnn_path() -> None:
    """BatchNorm encoders (raw form) under modulation and GE: two steps."""
    compare("ogm_ge", {}, [[16, 16], [24, 8], [10, 20]], 2, form="raw")


# --- MLA ---------------------------------------------------------------------------------------

@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("kwargs", [{}, {"project": True}, {"project": "batch", "inference": "fixed",
                                                            "weights": [0.3, 0.7]}])
def test_mla_run_k_reproduces_the_single_learner(kwargs: dict[str, Any]) -> None:
    """Alternating per-modality steps; the released projector persists per run across the epoch end."""

    def check(vt: VectorTrainer, tr: InnerTrainer, k: int) -> None:
        assert vt.learner.batch_index[k] == tr.learner.batch_index
        if tr.learner.projector is not None:
            assert vt.learner.count[k] == tr.learner.projector.count
            torch.testing.assert_close(vt.learner.P[k], tr.learner.projector.P, rtol=RTOL, atol=1e-9)

    compare("mla", kwargs, SIZES, 8, check=check)


@pytest.mark.usefixtures("float64")
def test_mla_cnn_path() -> None:
    compare("mla", {"project": "gs"}, [[16, 16], [24, 8], [10, 20]], 2, form="raw")


# --- env level ---------------------------------------------------------------------------------

ENV_KWARGS = {"dataset_kwargs": {"n_train": 320, "n_val": 100, "n_test": 100}, "epochs": 2, "batch_size": 32,
              "val_size": 100, "device": "cpu", "engine": "batched"}
ENV_LEARNER_KWARGS = {"ogm_ge": {}, "mla": {"project": True}, "boosting": {"check_every": 1}}


def env_episode(learner: str) -> None:
    kwargs = {**ENV_KWARGS, "learner": learner, "learner_kwargs": ENV_LEARNER_KWARGS[learner]}
    env = gym.make("DUS-Synthetic", **kwargs)
    assert type(env.unwrapped.runs.trainer).__name__ == "VectorTrainer"
    env.reset(seed=0)
    terminated, info = False, {}
    while not terminated:
        _, reward, terminated, _, info = env.step(np.array([1.0, -1.0], np.float32))
        assert np.isfinite(reward)
    assert 0.0 <= info["test"]["fused_acc"] <= 1.0
    vec = gym.make_vec("DUS-Synthetic", num_envs=4, vectorization_mode="vector_entry_point", **kwargs)
    assert type(vec.trainer).__name__ == "VectorTrainer"
    vec.reset(seed=0)
    for _ in range(3):
        _, rewards, _, _, infos = vec.step(np.tile(np.array([[1.0, -1.0]], np.float32), (4, 1)))
        assert np.isfinite(rewards).all()
    vec.close()
    env.close()
    return info


def test_ogm_ge_in_the_env() -> None:
    info = env_episode("ogm_ge")
    assert set(info["ogm_coeff"]) == {"audio", "video"}


def test_mla_in_the_env() -> None:
    info = env_episode("mla")
    assert 0.0 <= info["test"]["video_acc"] <= 1.0
