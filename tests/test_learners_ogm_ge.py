"""OGM-GE: the coefficient, the reference's scale-then-noise on encoder weights, both variants."""

from __future__ import annotations

import math

import pytest
import torch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.learners.base import Batch, OptimConfig
from mmrl_env.learners.ogm_ge import OGMGELearner, ogm_coefficients


@pytest.fixture(scope="module")
def data():
    return load_synthetic(n_train=128, n_val=32, n_test=32)


def make(data, **kwargs) -> OGMGELearner:
    return OGMGELearner(data, OptimConfig(), torch.device("cpu"), torch.Generator().manual_seed(0), **kwargs)


def test_coefficient_formula():
    k, mod = ogm_coefficients(torch.tensor([0.9, 0.3]), alpha=0.8)
    assert k.tolist() == pytest.approx([1 - math.tanh(0.8 * 3.0), 1.0], rel=1e-5)
    assert mod.tolist() == [True, False]
    k, mod = ogm_coefficients(torch.tensor([0.3, 0.3]), alpha=0.8)  # ρ = 1: no modulation
    assert k.tolist() == [1.0, 1.0] and not mod.any()
    k, mod = ogm_coefficients(torch.tensor([0.6, 0.2, 0.2]), alpha=0.5)  # M = 3: vs the others' mean
    assert k.tolist() == pytest.approx([1 - math.tanh(0.5 * 3.0), 1.0, 1.0], rel=1e-5)


def crafted(data, learner: OGMGELearner, strong: int) -> tuple[Batch, list[torch.Tensor], list]:
    """A batch whose logits make ``strong`` confident on the true class, and random grads everywhere."""
    idx = torch.arange(16)
    y = data.train.gather_labels(idx)
    batch = Batch([data.train.gather(j, idx) for j in range(2)], [y, y], 16, 16)
    logits = [torch.zeros(16, data.num_classes) for _ in range(2)]
    logits[strong] = 5 * torch.nn.functional.one_hot(y, data.num_classes).float()
    gen = torch.Generator().manual_seed(1)
    for p in learner.model.parameters():
        p.grad = torch.randn(p.shape, generator=gen)
    return batch, logits, [p.grad.clone() for p in learner.model.parameters()]


def hand_coefficient(data, strong_logits: torch.Tensor, y: torch.Tensor) -> float:
    s_strong = torch.softmax(strong_logits, 1).gather(1, y[:, None]).mean().item()
    return 1 - math.tanh(0.8 * s_strong / (1 / data.num_classes))  # the weak logits are all zero: s = 1/K


@pytest.mark.parametrize("strong", [0, 1])
def test_scales_strong_encoder_weights_only(data, strong):
    learner = make(data, ge=False)
    batch, logits, before = crafted(data, learner, strong)
    learner.modulate_gradients(batch, logits)
    k = hand_coefficient(data, logits[strong], batch.labels[0])
    owner = {id(p): j for j, enc in enumerate(learner.model.encoders) for p in enc.parameters()}
    for p, g0 in zip(learner.model.parameters(), before, strict=True):
        factor = k if owner.get(id(p)) == strong and p.dim() >= 2 else 1.0  # biases, weak, heads, fusion: as is
        assert torch.allclose(p.grad, g0 * factor, atol=1e-6)


def test_gaussian_enhancement_by_hand(data):
    """g ← k·g, then g ← g + N(0, std(k·g)²) on BOTH encoders' weights, in parameter order."""
    learner = make(data, ge=True)
    batch, logits, before = crafted(data, learner, strong=0)
    noise_gen = torch.Generator().set_state(learner.noise_generator.get_state())
    k = [hand_coefficient(data, logits[0], batch.labels[0]), 1.0]
    expected = {}
    for j, enc in enumerate(learner.model.encoders):
        for p in enc.parameters():
            if p.dim() >= 2:
                g0 = before[[id(q) for q in learner.model.parameters()].index(id(p))]
                scaled = k[j] * g0
                expected[id(p)] = scaled + torch.randn(g0.shape, generator=noise_gen) * (scaled.std() + 1e-8)
    learner.modulate_gradients(batch, logits)
    assert len(expected) == 4  # two Linear weights per MLP encoder
    for p, g0 in zip(learner.model.parameters(), before, strict=True):
        assert torch.allclose(p.grad, expected.get(id(p), g0), atol=1e-6)
    strong_w = learner.model.encoders[0].net[0].weight  # the noise is on the damped gradient's scale, not 1/k× it
    g0 = before[[id(q) for q in learner.model.parameters()].index(id(strong_w))]
    assert (strong_w.grad - k[0] * g0).std().item() == pytest.approx(k[0] * g0.std().item(), rel=0.2)


def test_published_trains_fused_loss_only_and_slices_the_fusion_layer(data):
    learner = make(data)
    idx = torch.arange(24)
    y = data.train.gather_labels(idx)
    batch = Batch([data.train.gather(j, idx[:n]) for j, n in enumerate((16, 24))], [y[:16], y], 16, 32)
    feats = [learner.model.encode(j, x).detach() for j, x in enumerate(batch.inputs)]
    w, b = learner.model.fusion.fc.weight.detach().clone(), learner.model.fusion.fc.bias.detach().clone()
    d0 = feats[0].shape[1]
    out = learner.train_step(batch)
    assert all(p.grad is None for p in learner.model.heads.parameters())  # no auxiliary unimodal loss
    assert learner.model.fusion.fc.weight.grad is not None
    assert torch.allclose(out.unimodal_logits[0], feats[0] @ w[:, :d0].T + b / 2, atol=1e-5)
    assert torch.allclose(out.unimodal_logits[1], feats[1] @ w[:, d0:].T + b / 2, atol=1e-5)
    assert out.unimodal_logits[1].shape[0] == 24  # every row of modality 1 is scored
    x = [data.test.gather(j, torch.arange(8)) for j in range(2)]
    pred = learner.predict(x)
    assert torch.equal(pred.fused, pred.multi)  # inference: the fused logits only
    assert torch.allclose(pred.unimodal[0] + pred.unimodal[1], pred.fused, atol=1e-5)  # the slices add up


def test_joint_variant_keeps_auxiliary_heads(data):
    learner = make(data, variant="joint", alpha=0.3)
    idx = torch.arange(16)
    y = data.train.gather_labels(idx)
    learner.train_step(Batch([data.train.gather(j, idx) for j in range(2)], [y, y], 16, 16))
    assert all(p.grad is not None for p in learner.model.heads.parameters())
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
    learner.optimizer.step()  # (no grads yet: a no-op that keeps the LR scheduler's order check quiet)
    learner.on_epoch_end(0)
    learner.on_epoch_end(1)  # now in epoch 2
    batch, logits, before = crafted(data, learner, strong=0)
    learner.modulate_gradients(batch, logits)
    assert all(torch.equal(p.grad, g0) for p, g0 in zip(learner.model.parameters(), before, strict=True))
    assert learner.info()["ogm_coeff"] == {"audio": 1.0, "video": 1.0}
