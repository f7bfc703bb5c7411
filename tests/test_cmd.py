import pytest
import torch

from mmrl_env.monitors.cmd import CumulativeDiscrepancy, iteration_score, modality_discrepancy


def test_iteration_score_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [torch.log(torch.tensor(3.0)), 0.0]])
    labels = torch.tensor([0, 0])
    # softmax rows: [0.5, 0.5] and [0.75, 0.25] -> mean prob of true class = 0.625
    assert iteration_score(logits, labels).item() == pytest.approx(0.625)


def logits_for(probs: list[list[float]]) -> torch.Tensor:
    """(K, 1, 2) logits whose softmax gives class 0 the probability ``p`` (K runs, one row)."""
    p = torch.tensor(probs)
    return torch.log(torch.stack([p, 1 - p], dim=-1))


def one_row(k: int, m: int, sizes: list[list[int]] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.zeros(k, 1, dtype=torch.long)
    masks = torch.ones(k, m, 1) if sizes is None else torch.tensor(sizes, dtype=torch.float)[..., None]
    return labels, masks


def test_running_mean_matches_paper_recursion_per_run():
    cmd = CumulativeDiscrepancy(2, 2, mode="mean")
    labels, masks = one_row(2, 2)
    scores = [[(0.2, 0.6), (0.5, 0.5)], [(0.4, 0.3), (0.5, 0.5)], [(0.9, 0.3), (0.8, 0.2)]]
    for step in scores:  # step[k] = (audio, video) of run k
        cmd.update([logits_for([[a] for a, _ in step]).squeeze(1)[:, None],
                    logits_for([[v] for _, v in step]).squeeze(1)[:, None]], labels, masks)
    assert cmd.s_hat[0].tolist() == pytest.approx([0.5, 0.4])  # plain means of run 0
    assert cmd.s_hat[1].tolist() == pytest.approx([0.6, 0.4])  # run 1 is its own
    assert cmd.discrepancy[0].tolist() == pytest.approx([0.0, -0.1])


def test_ema_mode():
    cmd = CumulativeDiscrepancy(1, 1, mode="ema", ema_beta=0.5)
    labels, masks = one_row(1, 1)
    for s in (0.2, 0.6, 1 / 3):
        cmd.update([logits_for([[s]]).squeeze(1)[:, None]], labels, masks)
    first_two = 0.5 * 0.2 + 0.5 * 0.6  # ŝ_1 = s_1, then ŝ = β·ŝ + (1−β)·s
    assert cmd.s_hat.item() == pytest.approx(0.5 * first_two + 0.5 / 3)


def test_empty_batch_or_resting_run_keeps_score():
    cmd = CumulativeDiscrepancy(2, 2)
    half = torch.zeros(2, 1, 2)
    labels, masks = one_row(2, 2)
    cmd.update([half, half], labels, masks)
    sure = torch.tensor([[[10.0, 0.0]], [[10.0, 0.0]]])
    cmd.update([sure, sure], labels, torch.tensor([[[0.0], [1.0]], [[0.0], [0.0]]]))  # run 0: audio empty; run 1 rests
    assert cmd.s_hat[0, 0].item() == pytest.approx(0.5)
    assert cmd.s_hat[0, 1].item() > 0.7
    assert cmd.s_hat[1].tolist() == pytest.approx([0.5, 0.5])


def test_masks_select_each_runs_rows():
    cmd = CumulativeDiscrepancy(1, 1)
    logits = torch.log(torch.tensor([[[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]]]))
    labels = torch.zeros(1, 3, dtype=torch.long)
    cmd.update([logits], labels, torch.tensor([[[1.0, 1.0, 0.0]]]))  # n = 2: the padded third row is ignored
    assert cmd.s_hat.item() == pytest.approx(0.5)


def test_reset_forgets_only_the_given_runs():
    cmd = CumulativeDiscrepancy(2, 1)
    labels, masks = one_row(2, 1)
    cmd.update([logits_for([[0.8], [0.8]]).squeeze(1)[:, None]], labels, masks)
    cmd.reset([1])
    assert cmd.s_hat[:, 0].tolist() == pytest.approx([0.8, 0.0])


def test_discrepancy_definition():
    assert modality_discrepancy(torch.tensor([0.3, 0.7, 0.5])).tolist() == pytest.approx([-0.4, 0.0, -0.2])
    runs = modality_discrepancy(torch.tensor([[0.3, 0.7], [0.6, 0.2]]))
    assert torch.allclose(runs, torch.tensor([[-0.4, 0.0], [0.0, -0.4]]))
