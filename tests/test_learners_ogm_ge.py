"""OGM-GE: the modulation coefficient, and that it scales the strong encoder only."""

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


@pytest.mark.parametrize("strong", [0, 1])
def test_scales_strong_encoder_only(data, strong):
    learner = make(data, ge=False)
    batch, logits, before = crafted(data, learner, strong)
    learner.modulate_gradients(batch, logits)
    s_strong = torch.softmax(logits[strong], 1).gather(1, batch.labels[0][:, None]).mean()
    k = 1 - math.tanh(0.8 * (s_strong / (1 / data.num_classes)).item())
    owner = {id(p): j for j, enc in enumerate(learner.model.encoders) for p in enc.parameters()}
    for p, g0 in zip(learner.model.parameters(), before, strict=True):
        factor = k if owner.get(id(p)) == strong else 1.0  # weak encoder, heads, fusion untouched
        assert torch.allclose(p.grad, g0 * factor, atol=1e-6)


def test_gaussian_enhancement_perturbs_strong_encoder_only(data):
    learner = make(data, ge=True)
    batch, logits, before = crafted(data, learner, strong=0)
    learner.modulate_gradients(batch, logits)
    k = learner.last_coeff[0].item()
    strong = {id(p) for p in learner.model.encoders[0].parameters()}
    for p, g0 in zip(learner.model.parameters(), before, strict=True):
        if id(p) in strong:
            noise = p.grad - k * g0
            assert not torch.allclose(noise, torch.zeros_like(noise))
            if noise.numel() > 100:
                assert noise.std().item() == pytest.approx(g0.std().item(), rel=0.3)
        else:
            assert torch.equal(p.grad, g0)


def test_no_modulation_outside_epoch_window(data):
    learner = make(data, modulation_epochs=(0, 1))
    learner.optimizer.step()  # (no grads yet: a no-op that keeps the LR scheduler's order check quiet)
    learner.on_epoch_end(0)
    learner.on_epoch_end(1)  # now in epoch 2
    batch, logits, before = crafted(data, learner, strong=0)
    learner.modulate_gradients(batch, logits)
    assert all(torch.equal(p.grad, g0) for p, g0 in zip(learner.model.parameters(), before, strict=True))
    assert learner.info()["ogm_coeff"] == {"audio": 1.0, "video": 1.0}
