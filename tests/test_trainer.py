"""The inner trainer with one run (K = 1, as ``gym.make`` trains): batches, the joint loss, epochs, RNG."""

import pytest
import torch
from torch import nn

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig
from mmrl_env.learners.joint import masked_batch_normalised_ce
from mmrl_env.metrics import classification_metrics
from mmrl_env.models.multimodal import MultimodalNet


def small_trainer(**cfg):
    ds = load_synthetic(n_train=256, n_val=64, n_test=64)
    return InnerRun(ds, InnerRunConfig(batch_size=32, epochs=2, **cfg), 1, "cpu")


def test_batch_normalised_ce_is_mean_at_b_and_scales_with_n():
    z, y, ones = torch.randn(32, 4), torch.randint(0, 4, (32,)), torch.ones(32)
    assert torch.allclose(masked_batch_normalised_ce(z, y, ones, 32), nn.functional.cross_entropy(z, y))
    assert torch.allclose(masked_batch_normalised_ce(z.repeat(2, 1), y.repeat(2), ones.repeat(2), 32),
                          2 * nn.functional.cross_entropy(z, y))
    prefix = (torch.arange(32) < 10).float()  # the first 10 rows: their CE summed, over B
    noisy = torch.cat([z[:10], 100 * torch.randn(22, 4)])
    assert torch.allclose(masked_batch_normalised_ce(noisy, y, prefix, 32),
                          nn.functional.cross_entropy(z[:10], y[:10], reduction="sum") / 32)


def test_joint_loss_hand_computed():
    tr = small_trainer(learner_kwargs={"alpha": 0.2})
    tr.reset([0])
    batch = tr.make_batch([torch.arange(32)], torch.tensor([[32, 16]]))
    model = MultimodalNet(tr.dataset.modalities, tr.dataset.num_classes, "concat")
    model.load_state_dict(tr.learner.run_state_dict(0))  # run 0's weights in a plain model
    x, y = [t[0] for t in batch.inputs], batch.labels[0]
    with torch.no_grad():
        u = [model.encode(0, x[0]), model.encode(1, x[1][:16])]
        za, zv = model.heads[0](u[0]), model.heads[1](u[1])
        zm = model.fusion([u[0][:16], u[1]])
        ce = nn.functional.cross_entropy
        expected = 0.8 * ce(zm, y[:16]) + 0.2 * (ce(za, y) + ce(zv, y[:16], reduction="sum") / 32)
    out = tr.learner.train_step(batch)
    assert torch.allclose(out.loss[0], expected, atol=1e-5)
    assert torch.allclose(out.unimodal_logits[0][0], za, atol=1e-5)
    assert torch.allclose(out.unimodal_logits[1][0, :16], zv, atol=1e-5)


def test_batch_prefixes_share_samples():
    tr = small_trainer()
    tr.reset([0])
    b = tr.make_batch([torch.arange(40)], torch.tensor([[40, 10]]))
    assert b.n_common.tolist() == [10] and b.masks[0].sum(1).tolist() == [40, 10]
    assert torch.equal(b.run_labels(0, 0)[:10], b.run_labels(0, 1))
    assert torch.equal(b.inputs[1][0, :10], tr.dataset.train.gather(1, torch.arange(10)))


def test_epochs_and_schedule():
    tr = small_trainer()
    tr.reset([0])
    tr.train(tr.iterations_per_epoch, [[32, 32]])
    assert tr.epoch.tolist() == [1] and not tr.done.any()
    tr.train(10_000, [[32, 32]])
    assert tr.done.all() and tr.epoch.tolist() == [2] and tr.iteration.tolist() == [tr.total_iterations]
    tr.reset([0])
    tr.train_epoch([torch.arange(40)])
    assert tr.epoch.tolist() == [1] and tr.iteration.tolist() == [2]


def test_reset_leaves_global_rng_alone():
    tr = small_trainer()
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    tr.reset([0])
    tr.train(3, [[32, 32]])
    assert torch.equal(before, torch.random.get_rng_state())


def test_metrics():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    m = classification_metrics(logits, torch.tensor([0, 1, 1, 1]))
    # predictions [0, 1, 0, 1]: class-0 F1 = 2/3, class-1 F1 = 0.8
    assert m["acc"] == 0.75
    assert m["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    # AP class 0 = 0.5 (tie of one positive and one negative at the top);
    # AP class 1 = 2/3·1 + 1/3·3/4
    assert m["map"] == pytest.approx((0.5 + (2 / 3 + 0.25)) / 2)
