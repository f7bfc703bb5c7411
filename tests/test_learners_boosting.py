"""AUG (``boosting``): residual labels, the three losses, classifier growth, ACA, ω, checkpoints.

Most tests drive one run (K = 1) of the learner directly, on crafted batches."""

from __future__ import annotations

import io
import logging
import math

import pytest
import torch
from test_engine import one_run_batch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig
from mmrl_env.learners import build_learner, check_learner
from mmrl_env.learners.boosting import (
    BoostingLearner,
    aca_decision,
    boosting_losses,
    is_check_epoch,
    omega_target,
    residual_target,
    trained_additions,
)

LN2 = math.log(2.0)
ON = torch.tensor([True])  # the one run of a K = 1 learner


@pytest.fixture(scope="module")
def data():
    return load_synthetic(n_train=128, n_val=32, n_test=32)


def make(data, seed: int = 0, optim: OptimConfig | None = None, **kwargs) -> BoostingLearner:
    g = torch.Generator().manual_seed(seed)
    return BoostingLearner(data, optim or OptimConfig(lr=0.05), torch.device("cpu"), [g], **kwargs)


def batch(data, sizes: list[int]):
    return one_run_batch(data.train, sizes, 32)


def test_residual_target_hand_computed():
    onehot = torch.tensor([[1.0, 0.0, 0.0]])
    prev = torch.tensor([[0.4, 0.4, 0.2]])
    assert torch.allclose(residual_target(onehot, prev, 0.2), torch.tensor([[1 - 0.2 * 0.4, 0.0, 0.0]]))
    assert torch.equal(residual_target(onehot, torch.zeros(1, 3), 0.2), onehot)  # first classifier: plain labels


def test_residual_labels_use_the_earlier_ensembles_prediction():
    """Classifier 3's target: ŷ = y − λ·y ⊙ softmax(z_1 + z_2) (the ensemble so far; SPEC §5, the release),
    not y − λ·Σ_j y ⊙ softmax(z_j)."""
    z = torch.stack([torch.tensor([[LN2, 0.0, 0.0]]), torch.tensor([[0.0, LN2, 0.0]]), torch.zeros(1, 3)])
    eps = boosting_losses(z, torch.tensor(3), torch.tensor(1.0), torch.tensor([0]), torch.ones(1), 0.2, 1)[0]
    # softmax([ln2, ln2, 0]) = [2/5, 2/5, 1/5]: ŷ = [1 − 0.2·0.4, 0, 0]; newest z_3 = 0: −log softmax = log 3
    assert eps.item() == pytest.approx((1 - 0.2 * 0.4) * math.log(3.0))


def test_residual_target_stays_non_zero_with_many_classifiers():
    """Ten confident classifiers before the newest: its target keeps 1 − λ·p ≥ 1 − λ on the true class,
    so its error term never vanishes."""
    earlier = torch.tensor([[5.0, 0.0, 0.0]]).expand(10, 1, 3)
    z = torch.cat([earlier, torch.zeros(1, 1, 3)])  # 11 classifiers, the newest uniform
    eps = boosting_losses(z, torch.tensor(11), torch.tensor(1.0), torch.tensor([0]), torch.ones(1), 0.2, 1)[0]
    p = torch.tensor([50.0, 0.0, 0.0]).softmax(-1)[0].item()  # the ensemble of the ten
    assert eps.item() == pytest.approx((1 - 0.2 * p) * math.log(3.0))
    assert eps.item() > 0.79 * math.log(3.0)


def test_first_loss_counts_a_lone_classifiers_ce_twice_or_once():
    z = torch.tensor([[[LN2, 0.0, 0.0]]])  # one classifier: softmax_y = 1/2
    args = (torch.tensor(1), torch.tensor(1.0), torch.tensor([0]), torch.ones(1), 0.2, 1)
    paper = boosting_losses(z, *args)  # eq. 5 at t = 1: ε and ε_o are the same CE
    release = boosting_losses(z, *args, first_once=True)  # the release: CE(out, y) once
    assert [x.item() for x in paper[:3]] == pytest.approx([LN2, LN2, 0.0])
    assert [x.item() for x in release[:3]] == pytest.approx([0.0, LN2, 0.0])
    two = torch.cat([z, torch.zeros(1, 1, 3)])  # with two classifiers the switch changes nothing
    assert boosting_losses(two, torch.tensor(2), *args[1:], first_once=True)[0].item() == pytest.approx(
        boosting_losses(two, torch.tensor(2), *args[1:])[0].item())


def test_three_losses_hand_computed():
    z = torch.stack([torch.tensor([[LN2, 0.0, 0.0]]), torch.zeros(1, 3)])  # t = 2 classifiers, one sample
    y, one = torch.tensor([0]), torch.tensor(1.0)
    eps, eps_o, eps_p, total = boosting_losses(z, torch.tensor(2), one, y, torch.ones(1), 0.2, batch_size=1)
    assert eps.item() == pytest.approx((1 - 0.2 * 0.5) * math.log(3.0))  # newest vs ŷ = 0.9·y
    assert eps_o.item() == pytest.approx(LN2)  # softmax(z1 + z2)_y = 1/2
    assert eps_p.item() == pytest.approx(LN2)  # softmax(z1)_y = 1/2
    assert torch.allclose(total, z.sum(0))
    eps1, eps_o1, eps_p1, _ = boosting_losses(z[1:], torch.tensor(1), one, y, torch.ones(1), 0.2, batch_size=2)
    assert (eps1.item(), eps_o1.item(), eps_p1.item()) == pytest.approx((math.log(3) / 2, math.log(3) / 2, 0.0))
    # a dead third slot and a masked second row change nothing
    padded = torch.cat([torch.cat([z, torch.randn(1, 1, 3)]), torch.randn(3, 1, 3)], dim=1)
    got = boosting_losses(padded, torch.tensor(2), one, torch.tensor([0, 2]), torch.tensor([1.0, 0.0]), 0.2, 1)
    assert [g.item() for g in got[:3]] == pytest.approx([eps.item(), eps_o.item(), eps_p.item()])
    # ω scales the added classifiers (t ≥ 2) only
    scaled = boosting_losses(z, torch.tensor(2), torch.tensor(0.5), y, torch.ones(1), 0.2, 1)[3]
    assert torch.allclose(scaled, z[0] + 0.5 * z[1])


def test_aca_two_modalities():
    assert aca_decision(torch.tensor([0.8, 0.5])) == [1]  # audio ahead: video gets one
    assert aca_decision(torch.tensor([0.5, 0.8])) == [0]  # video ahead: audio gets one
    assert aca_decision(torch.tensor([0.5, 0.505])) == []  # dead zone τ = 0.01
    assert aca_decision(torch.tensor([0.8, 0.75]), sigma=1.1) == [0]  # 0.8 − 1.1·0.75 < −τ


def test_aca_release_rule_is_a_ratio():
    s = torch.tensor([0.2, 0.195])  # difference 0.005 < τ; ratio 1.026 > 1 + τ
    assert aca_decision(s) == []
    assert aca_decision(s, rule="release") == [1]
    assert aca_decision(torch.tensor([0.195, 0.2]), rule="release") == [0]
    assert aca_decision(torch.tensor([0.5, 0.502]), rule="release") == []  # 0.996: inside 1 ± τ
    assert aca_decision(torch.tensor([0.9, 0.9, 0.5]), rule="release") == [2]


def test_check_epochs_leave_every_added_classifier_an_epoch_to_train():
    assert [e for e in range(8) if is_check_epoch(e, 2, "paper", 8)] == [1, 3, 5]  # not after the last epoch
    assert [e for e in range(8) if is_check_epoch(e, 2, "release", 8)] == [0, 1, 3, 5]  # also after epoch 0
    assert trained_additions(100, 20) == 4  # the old cremad_aug preset: at most 4 trained additions
    assert trained_additions(200, 20) == 9  # 200 epochs: 9 additions, 10 classifiers (AUG Figure 4)
    assert trained_additions(200, 20, "release") == 10


def test_aca_more_modalities():
    assert aca_decision(torch.tensor([0.9, 0.9, 0.5])) == [2]
    assert aca_decision(torch.tensor([0.9, 0.5, 0.5])) == [1, 2]  # each is 0.2 below the others' mean
    assert aca_decision(torch.tensor([0.6, 0.6, 0.595])) == []


def slot_update(lr: float, data) -> torch.Tensor:
    """The first update of a classifier added while the run's lr is ``lr``."""
    learner = make(data, check_every=100)
    learner.lr_schedule.lr.fill_(lr)  # as if the schedule had decayed it
    learner.add_classifier(0, 1)
    assert learner.counts.tolist() == [[1, 2]]
    for part in learner.groups["slot1.0"].parts:  # fresh momentum for the new classifier
        assert not part.state["momentum_buffer"].any()
    before = learner.stack.params["slots.1.0.weight"][0].clone()
    learner.train_step(batch(data, [32, 32]))
    return learner.stack.params["slots.1.0.weight"][0] - before


def test_added_classifier_trains_at_the_runs_current_lr(data):
    """With fresh momentum SGD's first update is lr·(g + wd·w): the new classifier steps at the run's
    current (decayed) lr, as every other parameter does."""
    small, large = slot_update(0.01, data), slot_update(0.02, data)
    assert small.abs().sum() > 0
    torch.testing.assert_close(large, 2 * small, rtol=1e-3, atol=1e-7)  # float32: w − lr·(g + wd·w) rounds at ~1e-8


def test_unimodal_logits_are_summed_classifiers(data):
    learner = make(data, check_every=100)
    learner.add_classifier(0, 1)
    learner.omega[0, 1] = 0.5  # ω weighs the added classifier
    b = batch(data, [16, 48])  # unequal n_j
    learner.train_step(b)  # the added classifier has trained: it votes
    expected = learner.predict([x[0] for x in b.inputs]).unimodal  # the live ensembles, ω-weighted (eval forward)
    weights = learner.stack.run_state_dict(0)
    feats = torch.func.functional_call(learner.stack.template.encoders[1], {
        k.removeprefix("encoders.1."): v for k, v in weights.items() if k.startswith("encoders.1.")}, (b.inputs[1][0],))

    def classifier(prefix: str) -> torch.Tensor:  # head(relu(Layer1(u)))
        hidden = torch.relu(feats @ weights[f"{prefix}.weight"].T + weights[f"{prefix}.bias"])
        return hidden @ weights["head.weight"].T + weights["head.bias"]

    by_hand = classifier("layer1.1.0") + 0.5 * classifier("slots.1.0")  # video: the first + ω·the added one
    assert torch.allclose(expected[1][0], by_hand, atol=1e-5)
    out = learner.train_step(b)  # the step returns the same sums for the rows it trained on
    for j, n in enumerate((16, 48)):
        z = out.unimodal_logits[j][0, :n]
        assert torch.allclose(z, expected[j][0, :n], atol=1e-5)
        assert not z.requires_grad


def aca(learner: BoostingLearner, scores: list[float]) -> None:
    """An epoch end of the one run whose check window scored ``scores``."""
    learner.score_sum = torch.tensor([scores])
    learner.score_count = torch.ones(1, len(scores), dtype=torch.long)
    learner.on_epoch_end(ON)


def test_assign_adds_to_weak_and_respects_cap(data, caplog):
    learner = make(data, check_every=1, max_classifiers=2)
    assert learner.assign(ON, torch.tensor([[0.8, 0.4]])) == [[1]]
    with caplog.at_level(logging.INFO, logger="mmrl_env.learners.boosting"):
        assert learner.assign(ON, torch.tensor([[0.8, 0.4]])) == [[]]
    assert "maximum of 2 classifiers" in caplog.text
    aca(learner, [0.3, 0.9])  # through the epoch end
    assert learner.run_info(0)["classifiers"] == {"audio": 2, "video": 2}


def test_an_untrained_classifier_never_votes(data):
    """A classifier ACA just added changes no prediction until it has stepped once."""
    learner = make(data, check_every=100)
    x = [data.test.gather(j, torch.arange(16)) for j in range(2)]
    before = learner.predict(x)
    learner.add_classifier(0, 1)
    after = learner.predict(x)
    assert torch.equal(after.fused, before.fused) and torch.equal(after.unimodal[1], before.unimodal[1])
    assert learner.trained.tolist() == [[1, 1]] and learner.counts.tolist() == [[1, 2]]
    learner.train_step(batch(data, [32, 0]))  # video got no rows: its new classifier has not trained
    assert learner.trained.tolist() == [[1, 1]]
    learner.train_step(batch(data, [32, 32]))
    assert learner.trained.tolist() == [[1, 2]]


def test_no_check_after_the_last_epoch(data):
    """In a run of 4 epochs with T = 2, ACA checks after epoch 2 only: one added after epoch 4 would never train."""
    learner = make(data, check_every=2)
    learner.set_run_length(4, 10)
    for _ in range(4):
        aca(learner, [0.9, 0.3])
    assert learner.counts.tolist() == [[1, 2]]


def test_trained_run_reports_only_trained_classifiers(data):
    """Through the trainer (6 epochs, T = 2): every classifier counted at the end has trained and votes."""
    from mmrl_training.learner_runs import run_seeds

    kwargs = {"check_every": 2, "omega_steps": 5, "tau": 0.0}
    result = run_seeds("Synthetic", "boosting", kwargs, epochs=6, batch_size=32, seeds=[0], device="cpu",
                       dataset_kwargs={"n_train": 128, "n_val": 32, "n_test": 32},
                       progress=False)
    learner = result.inner_run.learner
    assert torch.equal(learner.counts, learner.trained)
    assert sum(learner.counts[0].tolist()) == 2 + trained_additions(6, 2)  # τ = 0: one at each check, after 2 and 4


def test_release_rule_checks_after_the_first_epoch_on_that_epochs_scores(data):
    learner = make(data, check_every=3, aca_rule="release")
    learner.set_run_length(9, 10)
    aca(learner, [0.9, 0.3])  # after epoch 1: a check
    assert learner.counts.tolist() == [[1, 2]]
    learner.score_sum, learner.score_count = torch.tensor([[0.9, 0.3]]), torch.ones(1, 2, dtype=torch.long)
    learner.on_epoch_end(ON)  # epoch 2: no check, but the window restarts (the release scores one epoch)
    assert learner.score_count.tolist() == [[0, 0]] and learner.counts.tolist() == [[1, 2]]
    aca(learner, [0.5, 0.5])  # after epoch 3: a check on this epoch's (balanced) scores alone
    assert learner.counts.tolist() == [[1, 2]]


def test_fusion_weights_weigh_the_modalities_at_inference(data):
    learner = make(data, check_every=100, fusion_weights=[0.4, 0.6])  # the release's CREMA-D weights
    x = [data.test.gather(j, torch.arange(16)) for j in range(2)]
    out = learner.predict(x)
    assert torch.allclose(out.fused, 0.4 * out.unimodal[0] + 0.6 * out.unimodal[1])
    with pytest.raises(ValueError, match="one weight per modality"):
        make(data, fusion_weights=[1.0])


def test_step_per_modality_steps_the_head_between_the_modalities(data):
    """The release's update: audio's loss and step first, then video's loss at the updated head. Audio's
    encoder moves exactly as in the joint step (its gradient is audio's loss at the start); video's does not."""
    optim = OptimConfig(lr=0.5, momentum=0.0, weight_decay=0.0)
    joint, split = make(data, optim=optim), make(data, optim=optim, step_per_modality=True)
    b = batch(data, [32, 32])
    start = joint.stack.run_state_dict(0)
    joint.train_step(b)
    split.train_step(b)
    a, s = joint.stack.run_state_dict(0), split.stack.run_state_dict(0)
    for name in start:
        moved = not torch.equal(a[name], start[name])
        if name.startswith(("encoders.0.", "layer1.0.")):
            torch.testing.assert_close(s[name], a[name])
        elif moved and name.startswith(("encoders.1.", "layer1.1.", "head.")):
            assert not torch.allclose(s[name], a[name], atol=1e-7), name
    slots = {f"slot{r}.{t}" for r in range(2) for t in range(9)}
    assert set(split.groups) == {"modality0", "modality1", "head"} | slots


def test_invalid_options_say_what_is_allowed(data):
    with pytest.raises(ValueError, match=r"aca_rule must be one of \('paper', 'release'\)"):
        make(data, aca_rule="ratio")
    with pytest.raises(ValueError, match=r"residual_weight \(λ\) must be in \[0, 1\]"):
        make(data, residual_weight=1.5)


def test_epoch_end_runs_aca_every_T_epochs(data):
    learner = make(data, check_every=2)
    learner.train_step(batch(data, [32, 32]))
    assert learner.score_count.tolist() == [[32, 32]]  # the window counts every trained row
    aca(learner, [0.9, 0.3])  # crafted window: audio far ahead
    assert learner.counts.tolist() == [[1, 1]]
    aca(learner, [0.9, 0.3])
    assert learner.counts.tolist() == [[1, 2]]
    assert learner.score_count.tolist() == [[0, 0]]  # a new check window starts


def test_omega_fits_paper_one_hot_target(data):
    learner = make(data, omega_target="onehot", omega_steps=300)
    learner.fit_omega(ON, torch.tensor([[0.8, 0.4]]))  # video is the weakest: g = [0, 1]
    assert learner.omega[0].tolist() == pytest.approx([0.0, 1.0], abs=0.05)
    s = torch.tensor([[0.8, 0.4]])
    assert torch.allclose(learner.omega, learner._omega_forward(learner.omega_stack.flat, s))
    learner.fit_omega(ON, torch.tensor([[0.4, 0.8]]))  # the order flips: so does ω
    assert learner.omega[0].tolist() == pytest.approx([1.0, 0.0], abs=0.05)
    assert set(learner.run_info(0)["omega"]) == {"audio", "video"}


def test_omega_target_rules():
    s = torch.tensor([0.4, 0.8])  # audio weakest
    assert omega_target(s, [1, 3], "onehot").tolist() == [1.0, 0.0]  # paper: video's 2 added classifiers off
    assert omega_target(s, [1, 3], "cover").tolist() == pytest.approx([1.0, 0.5])  # damped by s_min/s_r, not off
    assert omega_target(s, [1, 1], "cover").tolist() == [1.0, 0.0]  # no added classifiers: the paper's g
    s3 = torch.tensor([0.9, 0.5, 0.45])
    assert omega_target(s3, [1, 2, 2], "cover").tolist() == [0.0, 1.0, 1.0]  # every lagging modality covered
    assert omega_target(s3, [1, 2, 2], "onehot").tolist() == [0.0, 0.0, 1.0]


def test_default_omega_target_is_the_papers(data):
    """Re-decided on validation (BENCHMARKS.md "ω target, decided on validation"): cover was not better."""
    assert make(data).omega_rule == "onehot"


def test_flip_keeps_earlier_classifiers_on(data):
    """Video got classifiers while weak; then audio falls behind: with ``cover`` video's stay on."""
    for rule, low in (("cover", 0.5), ("onehot", None)):
        learner = make(data, omega_target=rule, omega_steps=300)
        learner.assign(ON, torch.tensor([[0.8, 0.4]]))
        learner.assign(ON, torch.tensor([[0.8, 0.4]]))
        assert learner.counts.tolist() == [[1, 3]]
        learner.assign(ON, torch.tensor([[0.5, 0.7]]))
        assert learner.counts.tolist() == [[2, 3]]
        if low is None:
            assert abs(learner.omega[0, 1].item()) < 0.05  # the paper's rule switches video's two off
        else:
            assert learner.omega[0, 1].item() > low


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
        a.add_classifier(0, r)
    a.fit_omega(ON, torch.tensor([[0.7, 0.5]]))
    a.train_step(batch(data, [32, 32]))
    b = make(data, seed=3, check_every=100)
    buf = io.BytesIO()  # through a real checkpoint: no tensors shared between a and b
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    assert b.counts.tolist() == [[2, 3]]
    x = [data.test.gather(j, torch.arange(16)) for j in range(2)]
    assert torch.equal(a.predict(x).fused, b.predict(x).fused)
    a.train_step(batch(data, [32, 32]))
    b.train_step(batch(data, [32, 32]))  # same optimizer state (momentum, per slot) -> same update
    assert torch.equal(a.predict(x).fused, b.predict(x).fused)


def test_lam_the_name_removed_before_1_0_is_refused_naming_residual_weight(data):
    """0.x: ``lam=`` is no longer an alias; checking, building or training with it is an error that
    names ``residual_weight=``, and nothing is built with the default in its place."""
    hint = "'lam' -> did you mean residual_weight=?"
    with pytest.raises(ValueError, match="unknown learner_kwargs \\['lam'\\]") as err:
        check_learner("boosting", {"lam": 0.3, "sigma": 2.0})
    assert hint in str(err.value)
    with pytest.raises(TypeError, match="lam"):
        build_learner("boosting", data, OptimConfig(), torch.device("cpu"), [torch.Generator()], lam=0.3)
    cfg = InnerRunConfig(batch_size=32, epochs=1, learner="boosting", learner_kwargs={"lam": 0.3})
    with pytest.raises(ValueError, match="did you mean residual_weight="):
        InnerRun(data, cfg, 2, "cpu")
    assert check_learner("boosting", {"residual_weight": 0.3}) == {"residual_weight": 0.3}


def test_step_per_modality_folds_each_encoders_batchnorm_statistics_once():
    """CNN encoders: modality r's encoder runs with the same parameters in both kinds of step, so its
    BatchNorm running statistics after one per-modality step equal those after one joint step."""
    raw = load_synthetic(n_train=64, n_val=16, n_test=16, form="raw")
    joint, split = make(raw), make(raw, step_per_modality=True)
    b = one_run_batch(raw.train, [16, 16], 16)
    joint.train_step(b)
    split.train_step(b)
    running = [k for k in joint.stack.buffers if k.endswith("running_mean")]
    assert running and {k.split(".")[1] for k in running} == {"0", "1"}  # both encoders have BatchNorm
    for name in running:
        torch.testing.assert_close(split.stack.buffers[name], joint.stack.buffers[name])
