import pytest
import torch
from torch import nn

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.learners.base import Batch, batch_normalised_ce
from mmrl_env.metrics import classification_metrics
from mmrl_env.trainer import InnerTrainer, TrainerConfig


def small_trainer(**cfg):
    ds = load_synthetic(n_train=256, n_val=64, n_test=64)
    return InnerTrainer(ds, TrainerConfig(batch_size=32, epochs=2, **cfg), "cpu")


def test_batch_normalised_ce_is_mean_at_b_and_scales_with_n():
    z, y = torch.randn(32, 4), torch.randint(0, 4, (32,))
    assert torch.allclose(batch_normalised_ce(z, y, 32), nn.functional.cross_entropy(z, y))
    assert torch.allclose(batch_normalised_ce(z.repeat(2, 1), y.repeat(2), 32), 2 * nn.functional.cross_entropy(z, y))


def test_joint_loss_hand_computed():
    tr = small_trainer(learner_kwargs={"alpha": 0.2})
    tr.reset(0)
    window = torch.arange(32)
    batch = tr.make_batch(window, [32, 16])
    model = tr.learner.model
    with torch.no_grad():
        u = [model.encode(j, x) for j, x in enumerate(batch.inputs)]
        za, zv = model.heads[0](u[0]), model.heads[1](u[1])
        zm = model.fusion([u[0][:16], u[1][:16]])
        ce = nn.functional.cross_entropy
        y = batch.labels[0]
        expected = 0.8 * ce(zm, y[:16]) + 0.2 * (ce(za, y) + ce(zv, y[:16], reduction="sum") / 32)
    out = tr.learner.train_step(batch)
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert [z.shape[0] for z in out.unimodal_logits] == [32, 16]


def test_batch_prefixes_share_samples():
    tr = small_trainer()
    tr.reset(0)
    b: Batch = tr.make_batch(torch.arange(40), [40, 10])
    assert b.n_common == 10
    assert torch.equal(b.labels[0][:10], b.labels[1])


def test_epochs_and_schedule():
    tr = small_trainer()
    tr.reset(0)
    tr.train(tr.iterations_per_epoch, [32, 32])
    assert tr.epoch == 1 and not tr.done
    tr.train(10_000, [32, 32])
    assert tr.done and tr.epoch == 2 and tr.iteration == tr.total_iterations
    tr.reset(0)
    tr.train_epoch(torch.arange(40))
    assert tr.epoch == 1 and tr.iteration == 2


def test_reset_leaves_global_rng_alone():
    tr = small_trainer()
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    tr.reset(0)
    tr.train(3, [32, 32])
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


def test_channels_last_handles_2d_and_3d_convolutions():
    from mmrl_env.learners.base import to_channels_last

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(3, 4, 3), nn.Linear(4, 2))
    to_channels_last(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[1].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert model[2].weight.is_contiguous()
