"""OGM-GE: the coefficient, the reference's scale-then-noise on encoder weights, both variants.

One run (K = 1) of the learner on crafted batches; gradients are the learner's flat (1, P) row."""

from __future__ import annotations

import math

import pytest
import torch
from test_engine import one_run_batch
from torch.func import functional_call

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.learners.ogm_ge import OGMGELearner, masked_score, ogm_coefficients

ON = torch.tensor([True])


@pytest.fixture(scope="module")
def data():
    return load_synthetic(n_train=128, n_val=32, n_test=32)


def make(data, **kwargs) -> OGMGELearner:
    return OGMGELearner(data, OptimConfig(), torch.device("cpu"), [torch.Generator().manual_seed(0)], **kwargs)


def test_coefficient_formula():
    k, mod = ogm_coefficients(torch.tensor([0.9, 0.3]), alpha=0.8)
    assert k.tolist() == pytest.approx([1 - math.tanh(0.8 * 3.0), 1.0], rel=1e-5)
    assert mod.tolist() == [True, False]
    k, mod = ogm_coefficients(torch.tensor([0.3, 0.3]), alpha=0.8)  # ρ = 1: no modulation
    assert k.tolist() == [1.0, 1.0] and not mod.any()
    k, mod = ogm_coefficients(torch.tensor([0.6, 0.2, 0.2]), alpha=0.5)  # M = 3: vs the others' mean
    assert k.tolist() == pytest.approx([1 - math.tanh(0.5 * 3.0), 1.0, 1.0], rel=1e-5)


def crafted(data, learner: OGMGELearner, strong: int):
    """A batch whose logits make ``strong`` confident on the true class (their scores), and random
    gradients for every parameter."""
    batch = one_run_batch(data.train, [16, 16], 16)
    y = batch.labels[0]
    logits = [torch.zeros(16, data.num_classes) for _ in range(2)]
    logits[strong] = 5 * torch.nn.functional.one_hot(y, data.num_classes).float()
    scores = torch.stack([masked_score(z, y, torch.ones(16)) for z in logits])[None]
    grads = torch.randn(learner.stack.flat.shape, generator=torch.Generator().manual_seed(1))
    return batch, logits, scores, grads


def hand_coefficient(data, strong_logits: torch.Tensor, y: torch.Tensor) -> float:
    s_strong = torch.softmax(strong_logits, 1).gather(1, y[:, None]).mean().item()
    return 1 - math.tanh(0.8 * s_strong / (1 / data.num_classes))  # the weak logits are all zero: s = 1/K


def columns(learner: OGMGELearner):
    """(name, shape, column range) of every parameter, in parameter order."""
    return [(n, s, learner.stack.columns[n]) for n, s in zip(learner.stack.names, learner.stack.shapes, strict=True)]


@pytest.mark.parametrize("strong", [0, 1])
def test_scales_strong_encoder_weights_only(data, strong):
    learner = make(data, ge=False)
    batch, logits, scores, grads = crafted(data, learner, strong)
    before = grads.clone()
    learner.modulate_gradients(batch, grads, scores)
    k = hand_coefficient(data, logits[strong], batch.labels[0])
    assert learner.last_coeff[0].tolist() == pytest.approx([k if j == strong else 1.0 for j in range(2)], abs=1e-6)
    for name, shape, (a, b) in columns(learner):
        # biases, the weak encoder, heads, fusion: as they were
        factor = k if name.startswith(f"encoders.{strong}.") and len(shape) >= 2 else 1.0
        assert torch.allclose(grads[0, a:b], before[0, a:b] * factor, atol=1e-6), name


def test_gaussian_enhancement_by_hand(data):
    """g ← k·g, then g ← g + N(0, std(k·g)²) on BOTH encoders' weights, in parameter order."""
    learner = make(data, ge=True)
    batch, logits, scores, grads = crafted(data, learner, strong=0)
    before = grads.clone()
    noise_gen = torch.Generator().set_state(learner.noise_generators[0].get_state())
    k = [hand_coefficient(data, logits[0], batch.labels[0]), 1.0]
    expected = {}
    for name, shape, (a, b) in columns(learner):
        for j in range(2):
            if name.startswith(f"encoders.{j}.") and len(shape) >= 2:
                scaled = k[j] * before[0, a:b]
                expected[name] = scaled + torch.randn(shape, generator=noise_gen).flatten() * (scaled.std() + 1e-8)
    learner.modulate_gradients(batch, grads, scores)
    assert len(expected) == 4  # two Linear weights per MLP encoder
    for name, _, (a, b) in columns(learner):
        assert torch.allclose(grads[0, a:b], expected.get(name, before[0, a:b]), atol=1e-6), name
    a, b = learner.stack.columns["encoders.0.net.0.weight"]  # the noise is on the damped gradient's scale, not 1/k× it
    g0 = before[0, a:b]
    assert (grads[0, a:b] - k[0] * g0).std().item() == pytest.approx(k[0] * g0.std().item(), rel=0.2)


def encoder_features(learner: OGMGELearner, batch) -> list[torch.Tensor]:
    weights = learner.run_state_dict(0)
    return [functional_call(learner.stack.template.encoders[j],
                            {n.removeprefix(f"encoders.{j}."): t for n, t in weights.items()
                             if n.startswith(f"encoders.{j}.")}, (x[0],)) for j, x in enumerate(batch.inputs)]


def test_published_trains_fused_loss_only_and_slices_the_fusion_layer(data):
    learner = make(data)
    batch = one_run_batch(data.train, [16, 24], 32)
    feats = encoder_features(learner, batch)
    before = learner.run_state_dict(0)
    w, b = before["fusion.fc.weight"], before["fusion.fc.bias"]
    d0 = feats[0].shape[1]
    out = learner.train_step(batch)
    after = learner.run_state_dict(0)
    for name in after:  # no auxiliary unimodal loss: the heads have no gradient and do not move
        assert torch.equal(after[name], before[name]) == name.startswith("heads."), name
    assert torch.allclose(out.unimodal_logits[0][0, :16], feats[0][:16] @ w[:, :d0].T + b / 2, atol=1e-5)
    assert torch.allclose(out.unimodal_logits[1][0, :24], feats[1] @ w[:, d0:].T + b / 2, atol=1e-5)  # all 24 rows
    x = [data.test.gather(j, torch.arange(8)) for j in range(2)]
    pred = learner.predict(x)
    assert torch.equal(pred.fused, pred.multi)  # inference: the fused logits only
    assert torch.allclose(pred.unimodal[0] + pred.unimodal[1], pred.fused, atol=1e-5)  # the slices add up


def test_published_does_not_step_without_a_fused_sample(data):
    """No row common to both modalities (n_audio = 0): nothing to learn from, nothing moves."""
    learner = make(data)
    before = learner.stack.flat.clone()
    out = learner.train_step(one_run_batch(data.train, [0, 24], 32))
    assert torch.equal(learner.stack.flat, before) and out.loss.item() == 0


def test_joint_variant_keeps_auxiliary_heads(data):
    learner = make(data, variant="joint", alpha=0.3)
    before = learner.run_state_dict(0)
    learner.train_step(one_run_batch(data.train, [16, 16], 16))
    after = learner.run_state_dict(0)
    assert all(not torch.equal(after[n], before[n]) for n in after if n.startswith("heads."))
    pred = learner.predict([data.test.gather(j, torch.arange(8)) for j in range(2)])
    assert torch.allclose(pred.fused, pred.multi + pred.unimodal[0] + pred.unimodal[1], atol=1e-5)


def test_bad_variant_combinations(data):
    with pytest.raises(ValueError, match="fused cross-entropy only"):
        make(data, alpha=0.2)
    with pytest.raises(ValueError, match="fusion='concat' or 'sum'"):
        make(data, fusion="film")
    with pytest.raises(ValueError, match="variant must be one of"):
        make(data, variant="ogm")
    make(data, fusion="sum")  # the reference's other linear fusion works


def test_modulation_window_auto_and_warning(data):
    learner = make(data)
    assert learner.modulation_epochs == (0, 50)  # the reference's window until the run length is known
    learner.set_run_length(8, 10)
    assert learner.modulation_epochs == (0, 4)  # the first half of the run
    late = make(data, modulation_epochs=(10, 20))
    with pytest.warns(UserWarning, match="never acts"):
        late.set_run_length(8, 10)


def test_no_modulation_outside_epoch_window(data):
    learner = make(data, modulation_epochs=(0, 1))
    learner.on_epoch_end(ON)
    learner.on_epoch_end(ON)  # now in epoch 2
    batch, logits, scores, grads = crafted(data, learner, strong=0)
    before = grads.clone()
    learner.modulate_gradients(batch, grads, scores)
    assert torch.equal(grads, before)
    assert learner.run_info(0)["ogm_coeff"] == {"audio": 1.0, "video": 1.0}
