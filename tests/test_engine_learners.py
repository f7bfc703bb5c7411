"""``ogm_ge``, ``mla`` and ``boosting`` on the run axis: run k of a K-run batch = run k's seed and
sizes trained alone on the per-run loop (``InnerRun(ds, cfg, 1, "cpu", vectorize=False)``:
plain ``grad``, no ``vmap``) — parameters, losses, logits, predictions, learner info and the
private generator's state (so every random draw happened as in the run alone), in float64
over steps that cross epoch ends (LR schedule, OGM-GE's window, MLA's batch index, ACA/ω)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_engine import SEEDS, SIZES, alone, config, dataset, float64, rel_error, run_steps  # noqa: F401

from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig
from mmrl_env.kwargs import accepted_kwargs
from mmrl_env.learners import LEARNERS, check_learner, learner_class

RTOL = 1e-5
EDGE_SIZES = [[32, 32], [0, 24], [20, 40]]  # run 1: no audio row, hence no common row (no fused sample)


def learner_config(learner: str, kwargs: dict[str, Any], batch_size: int = 32) -> InnerRunConfig:
    cfg = config(batch_size)
    cfg.learner, cfg.learner_kwargs = learner, dict(kwargs)
    return cfg


Schedule = list[tuple[int, list[bool]]]


def compare(learner: str, kwargs: dict[str, Any], sizes: list[list[int]], iterations: int | Schedule,
            form: str = "features", check: Callable[[InnerRun, InnerRun, int], None] | None = None,
            optim: dict[str, Any] | None = None) -> None:
    """Train K runs batched and each one alone; everything observable must agree. ``iterations``:
    a count, or a schedule of (count, active runs) so that runs fall out of step with each other."""
    ds = dataset(form, torch.float64)
    cfg = learner_config(learner, kwargs, 32 if form == "features" else 16)
    for key, value in (optim or {}).items():
        setattr(cfg.optim, key, value)
    schedule = [(iterations, [True] * len(SEEDS))] if isinstance(iterations, int) else iterations
    vt = InnerRun(ds, cfg, len(SEEDS), "cpu")
    vt.reset(SEEDS)
    vsteps: list = []
    for count, active in schedule:
        vt.train(count, sizes, active=torch.tensor(active), hooks=(lambda b, out: vsteps.append((b, out)),))
    vpred, vy = vt.predict(vt.dataset.test)
    for k, seed in enumerate(SEEDS):
        tr = alone(ds, cfg)
        tr.reset([seed])
        steps: list = []
        total = sum(count for count, active in schedule if active[k])
        tr.train(total, [sizes[k]], hooks=(run_steps(steps),))
        mine = [(b, out) for b, out in vsteps if out.active[k]]
        assert vt.epoch[k] == tr.epoch[0] and vt.iteration[k] == tr.iteration[0]
        assert torch.equal(vt.generators[k].get_state(), tr.generators[0].get_state()), "random draws differ"
        assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(k)) < RTOL
        assert vt.learner.lr_schedule.lr[k].item() == pytest.approx(tr.learner.lr_schedule.lr[0].item(), rel=1e-12)
        for (loss, logits), (batch, out) in zip(steps, mine, strict=True):
            torch.testing.assert_close(out.loss[k], loss.to(out.loss.dtype), rtol=RTOL, atol=1e-9)
            for j, z in enumerate(logits):
                n = z.shape[0]
                assert int(batch.sizes[k, j]) == n
                torch.testing.assert_close(out.unimodal_logits[j][k, :n], z, rtol=RTOL, atol=1e-9)
        pred, y = tr.predict(tr.dataset.test)
        assert torch.equal(y[0], vy[k])  # labels (K, N): run k's row
        torch.testing.assert_close(vpred.fused[k], pred.fused[0], rtol=RTOL, atol=1e-9)
        for j in range(2):
            torch.testing.assert_close(vpred.unimodal[j][k], pred.unimodal[j][0], rtol=RTOL, atol=1e-9)
        assert (vpred.multi is None) == (pred.multi is None)
        if pred.multi is not None:
            torch.testing.assert_close(vpred.multi[k], pred.multi[0], rtol=RTOL, atol=1e-9)
        info, vinfo = tr.run_info(0), vt.run_info(k)
        assert info.keys() == vinfo.keys()
        for key, value in info.items():
            assert value == pytest.approx(vinfo[key], rel=1e-5, abs=1e-9), key
        if check is not None:
            check(vt, tr, k)


def test_check_learner_validates_every_learners_kwargs() -> None:
    """Each learner's keyword arguments are read from its ``__init__`` (after dataset, optim, device,
    generators); a typo is refused with the closest valid name, before any run is built."""
    expected = {"joint": {"alpha", "fusion"},
                "ogm_ge": {"alpha_ogm", "modulation_epochs", "ge", "variant", "alpha", "fusion"},
                "mla": {"project", "inference", "weights"},
                "boosting": {"residual_weight", "check_every", "sigma", "tau", "max_classifiers", "hidden",
                             "omega_target", "omega_lr", "omega_steps", "first_loss", "aca_rule",
                             "step_per_modality", "fusion_weights"}}
    assert set(LEARNERS) == set(expected)
    for name, kwargs in expected.items():
        assert set(accepted_kwargs(learner_class(name))) == kwargs, name
    assert check_learner("ogm_ge", {"variant": "joint", "alpha": 0.3, "fusion": "sum"}) == {
        "variant": "joint", "alpha": 0.3, "fusion": "sum"}
    with pytest.raises(ValueError, match="'alpha_ogn' -> did you mean 'alpha_ogm'"):
        check_learner("ogm_ge", {"alpha_ogn": 0.5})
    with pytest.raises(ValueError, match="unknown learner_kwargs"):
        InnerRun(dataset(), learner_config("mla", {"projection": True}), 2, "cpu")


# --- OGM-GE ---------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")  # a run that never steps
@pytest.mark.parametrize(("kwargs", "sizes"), [
    ({}, SIZES),  # published, GE on, window "auto" = epochs [0, 1]: modulation throughout
    ({"modulation_epochs": (0, 0)}, EDGE_SIZES),  # the window closes at the epoch end; a run without common rows
    ({"variant": "joint", "alpha": 0.3, "fusion": "sum"}, EDGE_SIZES),
])
@pytest.mark.usefixtures("float64")
def test_ogm_ge_run_k_reproduces_the_seed_alone(kwargs: dict[str, Any], sizes: list[list[int]]) -> None:
    modulated: list[bool] = []

    def check(vt: InnerRun, tr: InnerRun, k: int) -> None:
        torch.testing.assert_close(vt.learner.last_coeff[k], tr.learner.last_coeff[0].double(), rtol=1e-5, atol=0)
        modulated.append(bool((tr.learner.last_coeff[0] < 1).any()))

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
def test_mla_run_k_reproduces_the_seed_alone(kwargs: dict[str, Any]) -> None:
    """Alternating per-modality steps; the released projector persists per run across the epoch end."""

    def check(vt: InnerRun, tr: InnerRun, k: int) -> None:
        assert vt.learner.batch_index[k] == tr.learner.batch_index[0]
        assert vt.learner.count[k] == tr.learner.count[0]
        torch.testing.assert_close(vt.learner.P[k], tr.learner.P[0], rtol=RTOL, atol=1e-9)

    compare("mla", kwargs, SIZES, 8, check=check)


@pytest.mark.usefixtures("float64")
def test_mla_cnn_path() -> None:
    compare("mla", {"project": "gs"}, [[16, 16], [24, 8], [10, 20]], 2, form="raw")


# --- boosting ----------------------------------------------------------------------------------

LAGGED = [(6, [True, True, True]), (3, [True, False, True]), (5, [True, True, True])]  # run 1 falls 3 steps behind


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize(("kwargs", "optim"), [
    ({"check_every": 1, "omega_steps": 20, "tau": 0.0}, None),  # τ = 0: a classifier at the one check of 2 epochs
    ({"check_every": 1, "omega_steps": 20, "tau": 0.0, "omega_target": "onehot", "max_classifiers": 2}, None),
    ({"check_every": 1, "omega_steps": 20, "hidden": 32, "tau": 0.0}, {"name": "adam", "lr": 1e-3}),  # Adam per slot
    ({"check_every": 1, "omega_steps": 20, "tau": 0.0, "step_per_modality": True, "aca_rule": "release",
      "first_loss": "release", "fusion_weights": [0.4, 0.6]}, None),  # the release's switches, on the run axis
])
def test_boosting_run_k_reproduces_the_seed_alone(kwargs: dict[str, Any], optim: dict[str, Any] | None) -> None:
    """ACA at every epoch end (T = 1); run 1 reaches its epoch ends later than runs 0 and 2, so
    runs add classifiers at different times yet stay in one batch."""
    grown: list[int] = []

    def check(vt: InnerRun, tr: InnerRun, k: int) -> None:
        assert vt.learner.counts[k].tolist() == tr.learner.counts[0].tolist()
        torch.testing.assert_close(vt.learner.omega[k], tr.learner.omega[0].to(vt.learner.omega.dtype), rtol=1e-5,
                                   atol=1e-9)
        torch.testing.assert_close(vt.learner.scores()[k], tr.learner.scores()[0], rtol=1e-5, atol=1e-9)
        grown.append(int(tr.learner.counts[0].sum()) - 2)

    compare("boosting", kwargs, SIZES, LAGGED, check=check, optim=optim)
    assert sum(grown) > 0  # ACA did add classifiers


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("per_modality", [False, True])
def test_boosting_cnn_path_with_curriculum_epochs(per_modality: bool) -> None:
    """BatchNorm encoders and BSS-style epochs (``train_epoch``, one short order per run): ACA after
    each one-step epoch, then a step with the new classifiers live (also with one step per modality,
    each folding only its own encoder's BatchNorm statistics)."""
    ds = dataset("raw", torch.float64)
    kwargs = {"check_every": 1, "omega_steps": 5, "hidden": 16, "tau": 0.0, "step_per_modality": per_modality}
    cfg = learner_config("boosting", kwargs, 16)
    orders = [torch.randperm(192, generator=torch.Generator().manual_seed(k))[:n] for k, n in enumerate((16, 12, 16))]
    vt = InnerRun(ds, cfg, 3, "cpu")
    vt.reset(SEEDS)
    vloss = [vt.train_epoch(orders) for _ in range(2)]
    pred, _ = vt.predict(vt.dataset.test)
    for k, seed in enumerate(SEEDS):
        tr = alone(ds, cfg)
        tr.reset([seed])
        loss = [tr.train_epoch([orders[k]])[0] for _ in range(2)]
        torch.testing.assert_close(torch.stack([v[k] for v in vloss]), torch.stack(loss), rtol=RTOL, atol=0)
        assert vt.learner.counts[k].tolist() == tr.learner.counts[0].tolist() and tr.learner.counts[0].sum() > 2
        assert rel_error(tr.learner.run_state_dict(0), vt.learner.run_state_dict(k)) < RTOL
        torch.testing.assert_close(pred.fused[k], tr.predict(tr.dataset.test)[0].fused[0], rtol=RTOL, atol=1e-9)


def test_slot_activation_starts_that_slots_optimizer_state_fresh_for_that_run_only() -> None:
    cfg = learner_config("boosting", {"check_every": 1, "max_classifiers": 3})
    vt = InnerRun(dataset(), cfg, 3, "cpu")
    vt.reset(SEEDS)
    learner = vt.learner
    for part in learner.groups["slot1.0"].parts:
        part.state["momentum_buffer"].fill_(1.0)  # as if every run had trained this slot
    before = learner.stack.params["slots.1.0.weight"].clone()
    learner.add_classifier(1, 1)
    assert learner.counts.tolist() == [[1, 1], [1, 2], [1, 1]]
    for part in learner.groups["slot1.0"].parts:
        buf = part.state["momentum_buffer"]
        assert buf[1].abs().sum() == 0 and (buf[[0, 2]] == 1).all()
    after = learner.stack.params["slots.1.0.weight"].clone()
    assert not torch.equal(after[1], before[1]) and torch.equal(after[[0, 2]], before[[0, 2]])
    assert vt.run_info(1)["classifiers"] == {"audio": 1, "video": 2}
    vt.train(1, SIZES)  # the live slot trains in run 1 only
    moved = (learner.stack.params["slots.1.0.weight"] != after).flatten(1).any(1)
    assert moved.tolist() == [False, True, False]


def test_boosting_resume_equals_uninterrupted() -> None:
    cfg = learner_config("boosting", {"check_every": 1, "omega_steps": 5, "tau": 0.0})
    ds = dataset()
    vt = InnerRun(ds, cfg, 3, "cpu")
    vt.reset(SEEDS)
    vt.train(6, SIZES)  # ends an epoch: ACA added classifiers
    state = vt.state_dict()
    vt.train(7, SIZES)
    resumed = InnerRun(ds, cfg, 3, "cpu")
    resumed.load_state_dict(state)
    resumed.train(7, SIZES)
    assert torch.equal(vt.learner.counts, resumed.learner.counts) and vt.learner.counts.sum() > 6
    assert torch.equal(vt.learner.stack.flat, resumed.learner.stack.flat)
    assert torch.equal(vt.learner.omega, resumed.learner.omega)


# --- env level ---------------------------------------------------------------------------------

ENV_KWARGS = {"dataset_kwargs": {"n_train": 320, "n_val": 100, "n_test": 100}, "epochs": 2, "batch_size": 32,
              "val_size": 100, "device": "cpu", "engine": "batched"}
ENV_LEARNER_KWARGS = {"ogm_ge": {}, "mla": {"project": True}, "boosting": {"check_every": 1, "tau": 0.0}}


def env_episode(learner: str) -> None:
    kwargs = {**ENV_KWARGS, "learner": learner, "learner_kwargs": ENV_LEARNER_KWARGS[learner]}
    env = gym.make("DUS-Synthetic", **kwargs)
    assert type(env.unwrapped.runs.inner_run).__name__ == "InnerRun"
    env.reset(seed=0)
    terminated, info = False, {}
    while not terminated:
        _, reward, terminated, _, info = env.step(np.array([1.0, -1.0], np.float32))
        assert np.isfinite(reward)
    assert 0.0 <= info["test"]["fused_acc"] <= 1.0
    vec = gym.make_vec("DUS-Synthetic", num_envs=4, vectorization_mode="vector_entry_point", **kwargs)
    assert type(vec.inner_run).__name__ == "InnerRun"
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


def test_boosting_in_the_env() -> None:
    info = env_episode("boosting")
    assert sum(info["classifiers"].values()) >= 3 and set(info["omega"]) == {"audio", "video"}
