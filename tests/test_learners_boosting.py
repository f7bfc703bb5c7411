"""AUG (``boosting``): residual labels, the three losses, classifier growth, ACA, ω, checkpoints."""

from __future__ import annotations

import io
import logging
import math
import warnings

import pytest
import torch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.engine import VectorTrainer
from mmrl_env.engine.sequential import SequentialTrainer
from mmrl_env.learners import build_learner, check_learner
from mmrl_env.learners.base import Batch, OptimConfig
from mmrl_env.learners.boosting import (
    BoostingLearner,
    aca_decision,
    boosting_losses,
    omega_target,
    residual_labels,
)
from mmrl_env.trainer import InnerTrainer, TrainerConfig

LN2 = math.log(2.0)


@pytest.fixture(scope="module")
def data():
    return load_synthetic(n_train=128, n_val=32, n_test=32)


def make(data, seed: int = 0, **kwargs) -> BoostingLearner:
    g = torch.Generator().manual_seed(seed)
    return BoostingLearner(data, OptimConfig(lr=0.05), torch.device("cpu"), g, **kwargs)


def batch(data, sizes: list[int]) -> Batch:
    idx = torch.arange(max(sizes))
    return Batch([data.train.gather(j, idx[:n]) for j, n in enumerate(sizes)],
                 [data.train.gather_labels(idx[:n]) for n in sizes], min(sizes), 32)


def test_residual_labels_hand_computed():
    onehot = torch.tensor([[1.0, 0.0, 0.0]])
    prev = torch.stack([torch.tensor([[LN2, 0.0, 0.0]]), torch.zeros(1, 3)])  # p_y = 1/2 and 1/3
    expected = torch.tensor([[1 - 0.2 * (0.5 + 1 / 3), 0.0, 0.0]])
    assert torch.allclose(residual_labels(onehot, prev, 0.2), expected)
    assert torch.equal(residual_labels(onehot, prev[:0], 0.2), onehot)  # first classifier: plain labels


def test_three_losses_hand_computed():
    z = torch.stack([torch.tensor([[LN2, 0.0, 0.0]]), torch.zeros(1, 3)])  # t = 2 classifiers, one sample
    eps, eps_o, eps_p = boosting_losses(z, torch.tensor([0]), 0.2, batch_size=1)
    assert eps.item() == pytest.approx((1 - 0.2 * 0.5) * math.log(3.0))  # newest vs ŷ = 0.9·y
    assert eps_o.item() == pytest.approx(LN2)  # softmax(z1 + z2)_y = 1/2
    assert eps_p.item() == pytest.approx(LN2)  # softmax(z1)_y = 1/2
    eps1, eps_o1, eps_p1 = boosting_losses(z[1:], torch.tensor([0]), 0.2, batch_size=2)
    assert (eps1.item(), eps_o1.item(), eps_p1.item()) == pytest.approx((math.log(3) / 2, math.log(3) / 2, 0.0))


def test_aca_two_modalities():
    assert aca_decision(torch.tensor([0.8, 0.5])) == [1]  # audio ahead: video gets one
    assert aca_decision(torch.tensor([0.5, 0.8])) == [0]  # video ahead: audio gets one
    assert aca_decision(torch.tensor([0.5, 0.505])) == []  # dead zone τ = 0.01
    assert aca_decision(torch.tensor([0.8, 0.75]), sigma=1.1) == [0]  # 0.8 − 1.1·0.75 < −τ


def test_aca_more_modalities():
    assert aca_decision(torch.tensor([0.9, 0.9, 0.5])) == [2]
    assert aca_decision(torch.tensor([0.9, 0.5, 0.5])) == [1, 2]  # each is 0.2 below the others' mean
    assert aca_decision(torch.tensor([0.6, 0.6, 0.595])) == []


def test_added_classifier_joins_optimizer_and_trains(data):
    learner = make(data, check_every=100)
    learner.optimizer.param_groups[0]["lr"] = 0.01  # as if the schedule had decayed it: the new group follows
    layer = learner.add_classifier(1)
    assert learner.model.counts == [1, 2]
    group = learner.optimizer.param_groups[-1]
    assert {id(p) for p in group["params"]} == {id(p) for p in layer.parameters()}
    assert group["lr"] == 0.01 and group["momentum"] == 0.9
    assert all(p not in learner.optimizer.state for p in layer.parameters())  # fresh momentum
    assert layer.weight.device == learner.model.head.weight.device
    before = [p.detach().clone() for p in layer.parameters()]
    learner.train_step(batch(data, [32, 32]))
    assert all(not torch.equal(b, p) for b, p in zip(before, layer.parameters(), strict=True))
    learner.lr_schedule.step_size = 1  # the LR schedule drives the added group like the others
    learner.lr_schedule.step()
    assert group["lr"] == pytest.approx(0.001) and learner.optimizer.param_groups[0]["lr"] == pytest.approx(0.001)


def test_unimodal_logits_are_summed_classifiers(data):
    learner = make(data, check_every=100)
    learner.add_classifier(1)
    b = batch(data, [16, 48])  # unequal n_j
    with torch.no_grad():
        expected = [learner._logits(r, learner.model.encoders[r](x)).sum(0) for r, x in enumerate(b.inputs)]
    out = learner.train_step(b)
    assert [z.shape[0] for z in out.unimodal_logits] == [16, 48]
    for z, e in zip(out.unimodal_logits, expected, strict=True):
        assert torch.allclose(z, e, atol=1e-6)
        assert not z.requires_grad


def test_assign_adds_to_weak_and_respects_cap(data, caplog):
    learner = make(data, check_every=100, max_classifiers=2)
    assert learner.assign(torch.tensor([0.8, 0.4])) == [1]
    with caplog.at_level(logging.INFO, logger="mmrl_env.learners.boosting"):
        assert learner.assign(torch.tensor([0.8, 0.4])) == []
    assert "maximum of 2 classifiers" in caplog.text
    assert learner.assign(torch.tensor([0.3, 0.9])) == [0]
    assert learner.info()["classifiers"] == {"audio": 2, "video": 2}


def test_epoch_end_runs_aca_every_T_epochs(data):
    learner = make(data, check_every=2)
    learner.train_step(batch(data, [32, 32]))
    learner.score_sum = torch.tensor([0.9, 0.3])  # crafted window: audio far ahead
    learner.score_count = [1, 1]
    learner.on_epoch_end(0)
    assert learner.model.counts == [1, 1]
    learner.on_epoch_end(1)
    assert learner.model.counts == [1, 2]
    assert learner.score_count == [0, 0]  # a new check window starts


def test_omega_fits_paper_one_hot_target(data):
    learner = make(data, omega_target="onehot", omega_steps=300)
    omega = learner.fit_omega(torch.tensor([0.8, 0.4]))  # video is the weakest: g = [0, 1]
    assert omega.tolist() == pytest.approx([0.0, 1.0], abs=0.05)
    assert torch.allclose(omega, learner.omega_net(torch.tensor([0.8, 0.4])).detach())
    omega = learner.fit_omega(torch.tensor([0.4, 0.8]))  # the order flips: so does ω
    assert omega.tolist() == pytest.approx([1.0, 0.0], abs=0.05)
    assert set(learner.info()["omega"]) == {"audio", "video"}


def test_omega_target_rules():
    s = torch.tensor([0.4, 0.8])  # audio weakest
    assert omega_target(s, [1, 3], "onehot").tolist() == [1.0, 0.0]  # paper: video's 2 added classifiers off
    assert omega_target(s, [1, 3], "cover").tolist() == pytest.approx([1.0, 0.5])  # damped by s_min/s_r, not off
    assert omega_target(s, [1, 1], "cover").tolist() == [1.0, 0.0]  # no added classifiers: the paper's g
    s3 = torch.tensor([0.9, 0.5, 0.45])
    assert omega_target(s3, [1, 2, 2], "cover").tolist() == [0.0, 1.0, 1.0]  # every lagging modality covered
    assert omega_target(s3, [1, 2, 2], "onehot").tolist() == [0.0, 0.0, 1.0]


def test_flip_keeps_earlier_classifiers_on(data):
    """Video got classifiers while weak; then audio falls behind: with ``cover`` video's stay on."""
    for rule, low in (("cover", 0.5), ("onehot", None)):
        learner = make(data, omega_target=rule, omega_steps=300)
        learner.assign(torch.tensor([0.8, 0.4]))
        learner.assign(torch.tensor([0.8, 0.4]))
        assert learner.model.counts == [1, 3]
        learner.assign(torch.tensor([0.5, 0.7]))
        assert learner.model.counts == [2, 3]
        if low is None:
            assert abs(learner.omega[1].item()) < 0.05  # the paper's rule switches video's two off
        else:
            assert learner.omega[1].item() > low


def test_check_every_auto_scales_with_the_run(data):
    learner = make(data)
    assert learner.check_every == 20  # the paper's T until the run length is known
    learner.set_run_length(8, 10)
    assert learner.check_every == 2  # a fifth of the run: ACA acts 4 times in 8 epochs
    learner.set_run_length(100, 10)
    assert learner.check_every == 20
    fixed = make(data, check_every=20)
    with pytest.warns(UserWarning, match="check_every=20 is longer than the run"):
        fixed.set_run_length(8, 10)
    with pytest.raises(ValueError, match="positive number of epochs or 'auto'"):
        make(data, check_every=0)


def test_state_dict_round_trip_with_added_classifiers(data):
    a = make(data, seed=3, check_every=100)
    for r in (1, 1, 0):
        a.add_classifier(r)
    a.fit_omega(torch.tensor([0.7, 0.5]))
    a.train_step(batch(data, [32, 32]))
    b = make(data, seed=3, check_every=100)
    buf = io.BytesIO()  # through a real checkpoint: no tensors shared between a and b
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    assert b.model.counts == [2, 3]
    x = [data.test.gather(j, torch.arange(16)) for j in range(2)]
    assert torch.equal(a.predict(x).fused, b.predict(x).fused)
    a.train_step(batch(data, [32, 32]))
    b.train_step(batch(data, [32, 32]))  # same optimizer state (momentum) -> same update
    assert torch.equal(a.predict(x).fused, b.predict(x).fused)


def test_a_snapshot_from_before_the_lr_schedule_rename_still_resumes(data):
    a = make(data, seed=3, check_every=100)
    a.train_step(batch(data, [32, 32]))
    a.lr_schedule.step_size = 1
    a.lr_schedule.step()
    state = a.state_dict()
    state["scheduler"] = state.pop("lr_schedule")  # the key's spelling until the rename
    b = make(data, seed=3, check_every=100)
    b.lr_schedule.step_size = 1
    b.load_state_dict(state)
    assert b.lr_schedule.state_dict() == a.lr_schedule.state_dict()
    assert b.optimizer.param_groups[0]["lr"] == pytest.approx(a.optimizer.param_groups[0]["lr"])
    assert b.optimizer.param_groups[0]["lr"] != pytest.approx(0.05)  # the schedule really moved


def test_lam_is_the_old_name_of_residual_weight(data):
    """``lam=`` means ``residual_weight=``, with one FutureWarning per trainer (single, batched, sequential)."""
    with pytest.warns(FutureWarning, match="lam= is deprecated, use residual_weight="):
        assert check_learner("boosting", {"lam": 0.3, "sigma": 2.0}) == {"residual_weight": 0.3, "sigma": 2.0}
    with pytest.warns(FutureWarning, match="lam= is deprecated"):
        built = build_learner("boosting", data, OptimConfig(), torch.device("cpu"), torch.Generator(), lam=0.3)
    assert built.residual_weight == 0.3
    with pytest.raises(TypeError, match="give only one"):
        check_learner("boosting", {"lam": 0.3, "residual_weight": 0.2})
    cfg = TrainerConfig(batch_size=32, epochs=1, learner="boosting", learner_kwargs={"lam": 0.3})
    for trainer_class in (InnerTrainer, VectorTrainer, SequentialTrainer):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if trainer_class is InnerTrainer:
                trainer = InnerTrainer(data, cfg, "cpu")
                trainer.reset(0)
                learners = [trainer.learner]
            else:
                trainer = trainer_class(data, cfg, 2, "cpu")
                trainer.reset([0, 1])
                learners = [trainer.learner] if trainer_class is VectorTrainer else [t.learner for t in trainer.runs]
        assert [str(w.message) for w in caught if w.category is FutureWarning] == [
            "BoostingLearner: lam= is deprecated, use residual_weight= (the old name will be removed)"], trainer_class
        assert trainer.cfg.learner_kwargs == {"residual_weight": 0.3}
        assert [learner.residual_weight for learner in learners] == [0.3] * len(learners)
    assert cfg.learner_kwargs == {"lam": 0.3}  # the caller's config is left as given
