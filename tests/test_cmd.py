import pytest
import torch

from mmrl_env.monitors.cmd import CumulativeDiscrepancy, iteration_score, modality_discrepancy


def test_iteration_score_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [torch.log(torch.tensor(3.0)), 0.0]])
    labels = torch.tensor([0, 0])
    # softmax rows: [0.5, 0.5] and [0.75, 0.25] -> mean prob of true class = 0.625
    assert iteration_score(logits, labels).item() == pytest.approx(0.625)


def test_running_mean_matches_paper_recursion():
    cmd = CumulativeDiscrepancy(2, mode="mean")
    y = torch.tensor([0])
    scores = [(0.2, 0.6), (0.4, 0.3), (0.9, 0.3)]
    for sa, sv in scores:
        la = torch.log(torch.tensor([[sa, 1 - sa]]))
        lv = torch.log(torch.tensor([[sv, 1 - sv]]))
        cmd.update([la, lv], [y, y])
    assert cmd.s_hat.tolist() == pytest.approx([0.5, 0.4])  # plain means
    assert cmd.discrepancy.tolist() == pytest.approx([0.0, -0.1])


def test_ema_mode():
    cmd = CumulativeDiscrepancy(1, mode="ema", ema_beta=0.5)
    y = torch.tensor([0])
    for s in (0.2, 0.6):
        cmd.update([torch.log(torch.tensor([[s, 1 - s]]))], [y])
    assert cmd.s_hat.item() == pytest.approx(0.5 * 0.2 + 0.5 * 0.6)


def test_empty_batch_keeps_score():
    cmd = CumulativeDiscrepancy(2)
    y = torch.tensor([0])
    half = torch.zeros(1, 2)
    cmd.update([half, half], [y, y])
    cmd.update([torch.zeros(0, 2), torch.tensor([[10.0, 0.0]])], [torch.zeros(0, dtype=torch.long), y])
    assert cmd.s_hat[0].item() == pytest.approx(0.5)
    assert cmd.s_hat[1].item() > 0.7


def test_discrepancy_definition():
    assert modality_discrepancy(torch.tensor([0.3, 0.7, 0.5])).tolist() == pytest.approx([-0.4, 0.0, -0.2])
