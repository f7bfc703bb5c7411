"""MLA: one optimizer step per modality in turn, head-gradient projection, inference weights."""

from __future__ import annotations

import pytest
import torch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.learners.base import Batch, OptimConfig
from mmrl_env.learners.mla import MLALearner, entropy_weights


@pytest.fixture(scope="module")
def data():
    return load_synthetic(n_train=128, n_val=32, n_test=32)


def make(data, **kwargs) -> MLALearner:
    return MLALearner(data, OptimConfig(), torch.device("cpu"), torch.Generator().manual_seed(0), **kwargs)


def batch(data, sizes: list[int]) -> Batch:
    idx = torch.arange(max(sizes))
    return Batch([data.train.gather(j, idx[:n]) for j, n in enumerate(sizes)],
                 [data.train.gather_labels(idx[:n]) for n in sizes], min(sizes), 32)


def record(learner: MLALearner) -> list:
    """Log encoder forwards and optimizer steps (with the head gradient applied at each step)."""
    events: list = []
    for j, enc in enumerate(learner.model.encoders):
        enc.register_forward_hook(lambda m, i, o, j=j: events.append(("forward", j, i[0].shape[0])))
    step = learner.optimizer.step

    def logged_step(*a, **k):
        head = torch.cat([p.grad.flatten() for p in learner.model.head.parameters()])
        events.append(("step", head.clone()))
        return step(*a, **k)

    learner.optimizer.step = logged_step
    return events


def test_alternating_steps_on_own_samples(data):
    learner = make(data)
    events = record(learner)
    out = learner.train_step(batch(data, [16, 48]))
    assert [e[0] for e in events] == ["forward", "step", "forward", "step"]
    assert [e[1:] for e in events if e[0] == "forward"] == [(0, 16), (1, 48)]
    assert [z.shape[0] for z in out.unimodal_logits] == [16, 48]


def test_projection_makes_head_gradient_orthogonal(data):
    plain, proj = make(data), make(data, project=True)
    ev_plain, ev_proj = record(plain), record(proj)
    b = batch(data, [32, 32])
    plain.train_step(b)
    proj.train_step(b)
    g_plain = [e[1] for e in ev_plain if e[0] == "step"]
    g_proj = [e[1] for e in ev_proj if e[0] == "step"]
    assert torch.allclose(g_plain[0], g_proj[0])  # the first modality's gradient is untouched
    assert not torch.allclose(g_plain[1], g_proj[1], atol=1e-6)  # the second one really is changed
    assert abs(torch.dot(g_proj[1], g_proj[0]).item()) < 1e-6 * g_proj[0].norm().item() * g_plain[1].norm().item()
    assert abs(torch.dot(g_plain[1], g_plain[0]).item()) > 1e-3  # ... and was not orthogonal before


def test_entropy_weights_favour_confident_modality():
    confident = torch.tensor([[8.0, 0.0, 0.0]])
    unsure = torch.tensor([[0.1, 0.0, 0.0]])
    w = entropy_weights([unsure, confident])
    assert w.shape == (2, 1) and w[1, 0] > w[0, 0] and torch.allclose(w.sum(0), torch.ones(1))


def test_fixed_and_entropy_inference(data):
    x = [data.test.gather(j, torch.arange(8)) for j in range(2)]
    fixed = make(data, inference="fixed", weights=[0.25, 0.75]).predict(x)
    assert torch.allclose(fixed.fused, 0.25 * fixed.unimodal[0] + 0.75 * fixed.unimodal[1], atol=1e-6)
    ent = make(data).predict(x)
    w = entropy_weights(ent.unimodal)
    assert torch.allclose(ent.fused, w[0, :, None] * ent.unimodal[0] + w[1, :, None] * ent.unimodal[1], atol=1e-6)
    with pytest.raises(ValueError):
        make(data, inference="vote")
