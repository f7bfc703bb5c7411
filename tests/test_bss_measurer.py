"""The BSS measurer (eqs. 4–6) on hand-built logits, and one measuring pass of a real trainer."""

import math

import pytest
import torch

from mmrl_env.engine.batch import VectorPrediction
from mmrl_env.monitors.balance import (
    BalanceMeasurement,
    balance_score,
    measure_prediction,
    minmax,
    prediction_similarity,
    sample_loss,
)

P_U, P_V, P_W = [0.8, 0.2], [0.2, 0.8], [0.5, 0.5]


def logits(*probs: list[float]) -> torch.Tensor:
    """Logits whose softmax is exactly ``probs`` (one row per sample)."""
    return torch.tensor(probs).log()


def test_similarity_eq4_two_modalities():
    sim = prediction_similarity([logits(P_U, P_U), logits(P_V, P_U)])
    assert torch.allclose(sim, torch.tensor([0.32 / 0.68, 1.0]))


def test_similarity_is_mean_over_pairs_for_three_modalities():
    sim = prediction_similarity([logits(P_U), logits(P_V), logits(P_W)])
    cos_uw = 0.5 / (math.sqrt(0.68) * math.sqrt(0.5))
    assert sim.item() == pytest.approx((0.32 / 0.68 + 2 * cos_uw) / 3, rel=1e-6)


def test_similarity_needs_two_modalities():
    with pytest.raises(ValueError, match="two modalities"):
        prediction_similarity([logits(P_U)])


def test_sample_loss_eq5():
    y = torch.tensor([0, 1])
    loss = sample_loss(logits(P_W, P_U), [logits(P_U, P_U), logits(P_V, P_V)], y, alpha=0.2)
    first = 0.8 * math.log(2) + 0.2 * (-math.log(0.8) - math.log(0.2))
    second = 0.8 * -math.log(0.2) + 0.2 * (-math.log(0.2) - math.log(0.8))
    assert torch.allclose(loss, torch.tensor([first, second]))
    only_multi = sample_loss(logits(P_W, P_U), [logits(P_U, P_U), logits(P_V, P_V)], y, alpha=0.0)
    assert torch.allclose(only_multi, torch.tensor([math.log(2), -math.log(0.2)]))


def test_minmax_and_balance_score_eq6():
    assert torch.allclose(minmax(torch.tensor([2.0, 4.0, 6.0])), torch.tensor([0.0, 0.5, 1.0]))
    assert torch.equal(minmax(torch.full((3,), 5.0)), torch.zeros(3))
    score = balance_score(torch.tensor([0.2, 0.6, 1.0]), torch.tensor([3.0, 2.0, 1.0]))
    assert torch.allclose(score, torch.tensor([-1.0, 0.0, 1.0]), atol=1e-6)


def test_measure_prediction_uses_fusion_head_and_falls_back_to_fused():
    uni = [logits(P_U, P_V, P_W), logits(P_U, P_U, P_V)]
    y = torch.tensor([0, 1, 1])
    multi, fused = logits(P_U, P_V, P_W), logits(P_V, P_U, P_U)
    other = logits(P_U, P_U, P_U)  # run 0 of a K = 2 prediction; run 1's logits must not leak in
    runs, fused2 = [torch.stack([z, other]) for z in uni], torch.stack([fused, other])
    with_head = measure_prediction(VectorPrediction(fused2, runs, torch.stack([multi, other])), y, 0)
    assert torch.allclose(with_head.loss, sample_loss(multi, uni, y))
    without = measure_prediction(VectorPrediction(fused2, runs, None), y, 0)
    assert torch.allclose(without.loss, sample_loss(fused, uni, y))
    assert torch.allclose(measure_prediction(VectorPrediction(fused2, runs, None), y, 1).loss,
                          sample_loss(other, [other, other], y))
    assert torch.allclose(with_head.score, balance_score(with_head.similarity, with_head.loss))


def test_subset_means_count_repeats():
    m = BalanceMeasurement(torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0.5, 1.0, 0.0]), torch.tensor([1.0, 2.0, 3.0]))
    means = m.subset_means(torch.tensor([0, 0, 2]))
    assert means == pytest.approx({"score": 1 / 3, "similarity": 1 / 3, "loss": 5 / 3})



def test_measuring_in_train_mode_uses_batch_statistics_of_chunks_of_b():
    """``mode="train"`` (the authors' ``model_evaluate``): each chunk of B training samples, in dataset
    order, goes through the encoders with BatchNorm on that chunk's statistics, exactly as ``nn.Module.train()``
    does; the running statistics stay as they were. ``eval`` uses them, and ranks the untrained network differently."""
    from mmrl_env.data.synthetic import load_synthetic
    from mmrl_env.engine.batchnorm import batch_statistics
    from mmrl_env.inner_run import InnerRun
    from mmrl_env.inner_run.settings import InnerRunConfig
    from mmrl_env.models.multimodal import MultimodalNet
    from mmrl_env.monitors.balance import BalanceMeasurer

    data = load_synthetic(n_train=40, n_val=8, n_test=8, form="raw")
    trainer = InnerRun(data, InnerRunConfig(batch_size=16, epochs=1, learner="joint"), 1, "cpu")
    trainer.reset([0])
    buffers = {k: v.clone() for k, v in trainer.learner.stack.buffers.items()}
    net = MultimodalNet(data.modalities, data.num_classes)
    net.load_state_dict(trainer.learner.run_state_dict(0))
    net.train()  # the reference: plain torch modules in train mode, chunk by chunk
    with torch.no_grad(), batch_statistics():
        pred, _ = trainer.predict(data.train, chunk_size=16)
    with torch.no_grad():
        for j in range(2):
            ref = torch.cat([net.heads[j](net.encoders[j](data.train.gather(j, part)))
                             for part in torch.arange(40).split(16)])
            torch.testing.assert_close(pred.unimodal[j][0], ref, rtol=1e-4, atol=1e-4)
    train_mode = BalanceMeasurer(mode="train").measure_runs(trainer)[0]
    eval_mode = BalanceMeasurer().measure_runs(trainer)[0]
    assert not torch.allclose(train_mode.score, eval_mode.score, atol=1e-3)
    for k, v in trainer.learner.stack.buffers.items():
        assert torch.equal(v, buffers[k]), k  # measuring changed no running statistic
    with pytest.raises(ValueError, match=r"mode must be one of \('eval', 'train'\)"):
        BalanceMeasurer(mode="batch")
