"""MLA: one optimizer step per modality in turn, head-gradient projection, inference weights.

One run (K = 1) of the learner on crafted batches. The tests that watch the encoders' inputs run
the per-run loop (``set_vectorize(False)``: each encoder sees exactly its modality's rows); the
batched step equals it (tests/test_engine_runs.py)."""

from __future__ import annotations

import math

import pytest
import torch
from test_engine import one_run_batch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.learners.mla import MLALearner, entropy_weights

ON = torch.tensor([True])


@pytest.fixture(scope="module")
def data():
    return load_synthetic(n_train=128, n_val=32, n_test=32)


def make(data, **kwargs) -> MLALearner:
    learner = MLALearner(data, OptimConfig(), torch.device("cpu"), [torch.Generator().manual_seed(0)], **kwargs)
    learner.set_vectorize(False)
    return learner


def batch(data, sizes: list[int]):
    return one_run_batch(data.train, sizes, 32)


def record(learner: MLALearner) -> list:
    """Log encoder forwards (rows seen) and optimizer-group steps, with the head gradient each step applies."""
    events: list = []
    for j, enc in enumerate(learner.stack.template.encoders):
        enc.register_forward_hook(lambda m, i, o, j=j: events.append(("forward", j, i[0].shape[0], o.detach().clone())))
    step = learner.step_group
    lo, hi = learner.head_cols

    def logged_step(name, grads, gate):
        events.append(("step", name, grads[0, lo:hi].clone()))
        return step(name, grads, gate)

    learner.step_group = logged_step
    return events


def head_steps(events: list) -> list[torch.Tensor]:
    return [e[2] for e in events if e[:2] == ("step", "head")]


def test_alternating_steps_on_own_samples(data):
    learner = make(data)
    events = record(learner)
    out = learner.train_step(batch(data, [16, 48]))
    assert [e[:2] if e[0] == "step" else e[:3] for e in events] == [
        ("forward", 0, 16), ("step", "encoder0"), ("step", "head"),
        ("forward", 1, 48), ("step", "encoder1"), ("step", "head")]
    assert [z.shape[1] for z in out.unimodal_logits] == [48, 48]  # the window; modality 0's valid rows: 16


def test_batch_projection_makes_head_gradient_orthogonal(data):
    plain, proj = make(data), make(data, project="batch")
    ev_plain, ev_proj = record(plain), record(proj)
    b = batch(data, [32, 32])
    plain.train_step(b)
    proj.train_step(b)
    g_plain, g_proj = head_steps(ev_plain), head_steps(ev_proj)
    assert torch.allclose(g_plain[0], g_proj[0])  # the first modality's gradient is untouched
    assert not torch.allclose(g_plain[1], g_proj[1], atol=1e-6)  # the second one really is changed
    assert abs(torch.dot(g_proj[1], g_proj[0]).item()) < 1e-6 * g_proj[0].norm().item() * g_plain[1].norm().item()
    assert abs(torch.dot(g_plain[1], g_plain[0]).item()) > 1e-3  # ... and was not orthogonal before


def hand_projector_update(P: torch.Tensor, feats: torch.Tensor, a: float) -> torch.Tensor:
    r = feats.mean(0, keepdim=True)
    k = P @ r.T
    P = P - k @ k.T / (a + (r @ k).item())
    return P / P.norm()


def test_gs_projection_is_the_released_algorithm(data):
    """P₀ = I; before each step but the first: P ← normalise(P − k kᵀ/(a + r k)), G_W ← G_W Pᵀ."""
    plain, proj = make(data), make(data, project=True)
    ev_plain, ev_proj = record(plain), record(proj)
    b = batch(data, [32, 32])
    plain.train_step(b)
    proj.train_step(b)
    g_plain, g_proj = head_steps(ev_plain), head_steps(ev_proj)
    feats = [e[3] for e in ev_proj if e[0] == "forward"]
    k, d = data.num_classes, proj.weight_shape[1]
    assert torch.equal(g_plain[0], g_proj[0])  # the run's first step is left as is
    P = hand_projector_update(torch.eye(d), feats[1], 0.1)  # batch 0 of the epoch: a = 0.1^(0/L + 1)
    w_plain, bias_plain = g_plain[1][: k * d].view(k, d), g_plain[1][k * d:]
    assert torch.allclose(g_proj[1][: k * d].view(k, d), w_plain @ P.T, atol=1e-6)  # weight projected
    assert torch.equal(g_proj[1][k * d:], bias_plain)  # bias untouched
    assert torch.allclose(proj.P[0], P, atol=1e-6)
    proj.train_step(batch(data, [32, 32]))  # batch 1 of 4: a = 0.1^(1/4 + 1); P keeps building on the old one
    feats = [e[3] for e in ev_proj if e[0] == "forward"]
    assert len(feats) == 4
    for u in feats[2:]:
        P = hand_projector_update(P, u, 0.1 ** (1 / 4 + 1))
    assert torch.allclose(proj.P[0], P, atol=1e-6) and proj.count.tolist() == [4]
    proj.on_epoch_end(ON)
    assert proj.batch_index.tolist() == [0] and torch.equal(proj.P[0], P)  # persists across epochs


def test_gs_projector_survives_checkpoints(data):
    a = make(data, project="gs")
    a.train_step(batch(data, [32, 32]))
    b = make(data, project="gs")
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.P, b.P) and b.count.tolist() == [2] and b.batch_index.tolist() == [1]
    with pytest.raises(ValueError, match="project must be one of"):
        make(data, project="orthogonal")


def test_entropy_weights_favour_confident_modality():
    confident = torch.tensor([[8.0, 0.0, 0.0]])
    unsure = torch.tensor([[0.1, 0.0, 0.0]])
    w = entropy_weights([unsure, confident])
    assert w.shape == (2, 1) and w[1, 0] > w[0, 0] and torch.allclose(w.sum(0), torch.ones(1))
    p = torch.tensor([4.0, 1.0, 1.0]) / 6  # softmax([ln 4, 0, 0]): entropy by hand vs ln 3 for uniform logits
    h_conf, h_unif = -(p * p.log()).sum().item(), math.log(3)
    w = entropy_weights([torch.zeros(1, 3), torch.tensor([[math.log(4.0), 0.0, 0.0]])])
    assert w[1, 0].item() == pytest.approx(1 / (1 + math.exp(h_conf - h_unif)), rel=1e-5)


def test_fixed_and_entropy_inference(data):
    x = [data.test.gather(j, torch.arange(8)) for j in range(2)]
    fixed = make(data, inference="fixed", weights=[0.25, 0.75]).predict(x)
    assert fixed.multi is None  # no fusion head
    assert torch.allclose(fixed.fused, 0.25 * fixed.unimodal[0] + 0.75 * fixed.unimodal[1], atol=1e-6)
    ent = make(data).predict(x)
    fused, uni = ent.fused[0], [z[0] for z in ent.unimodal]  # the one run
    p = [z.softmax(1) for z in uni]  # by hand: w_j ∝ exp(−H_j), H_j = −Σ p log p per sample
    h = torch.stack([-(q * q.log()).sum(1) for q in p])
    w = torch.exp(-h) / torch.exp(-h).sum(0)
    assert torch.allclose(fused, w[0, :, None] * uni[0] + w[1, :, None] * uni[1], atol=1e-5)
    assert not torch.allclose(fused, 0.5 * (uni[0] + uni[1]), atol=1e-4)  # not equal weights
    with pytest.raises(ValueError):
        make(data, inference="vote")


def test_unequal_feature_sizes_get_adapters_to_the_shared_head():
    """Image-text encoders differ in size (ResNet50 2048, BERT 768): each modality gets a linear
    adapter to the smallest size, so the shared head applies; equal sizes add no parameters."""
    import dataclasses

    from mmrl_env.data.synthetic import load_synthetic
    from mmrl_env.learners.mla import SharedHeadNet

    data = load_synthetic(n_train=64, n_val=16, n_test=16)
    equal = SharedHeadNet(data, data.num_classes)
    assert all(isinstance(a, torch.nn.Identity) for a in equal.adapters)
    wide = dataclasses.replace(data.modalities[1], encoder_kwargs={**data.modalities[1].encoder_kwargs, "out_dim": 96})
    data.modalities = (data.modalities[0], wide)
    net = SharedHeadNet(data, data.num_classes)
    assert isinstance(net.adapters[0], torch.nn.Identity) and net.adapters[1].in_features == 96
    assert net.head.in_features == 64
    x = [s[:5] for s in data.train.inputs]
    net.eval()  # (no BatchNorm here; training mode would want the rows' masks)
    assert net(0, x[0])[1].shape == net(1, x[1])[1].shape == (5, data.num_classes)
    assert net(1, x[1])[0].shape == (5, 64)  # the features u, in the head's size
    loss = net(1, x[1])[1].sum()
    loss.backward()
    assert net.adapters[1].weight.grad.abs().sum() > 0  # the adapter trains with the head
