"""MFeat views written in the Custom user-data format, with and without a shifted test split."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sklearn.metrics import pairwise_distances_argmin_min

from mmrl_env.data.mfeat import TRIPLE, load_mfeat, raw_views
from mmrl_env.data.mfeat_custom import cluster_split, style_clusters, write_mfeat_custom
from mmrl_env.data.npz import load_npz


def test_unshifted_set_is_the_mfeat_task_through_the_custom_path(tmp_path):
    root = write_mfeat_custom(tmp_path / "c", views=TRIPLE)
    custom, mfeat = load_npz(root), load_mfeat(views=TRIPLE)
    assert custom.modality_names == TRIPLE and custom.num_classes == 10
    assert custom.optim_defaults == mfeat.optim_defaults
    assert [m.encoder for m in custom.modalities] == ["mlp"] * 3
    for a, b in ((custom.train, mfeat.train), (custom.val, mfeat.val), (custom.test, mfeat.test)):
        assert torch.equal(a.labels, b.labels)
        assert all(torch.equal(x, y) for x, y in zip(a.inputs, b.inputs, strict=True))


@pytest.mark.parametrize("shift", [None, "clusters", "noise"])
def test_written_set_runs_as_a_custom_env(tmp_path, shift):
    root = write_mfeat_custom(tmp_path / "c", shift=shift)
    env = gym.make("DUS-Custom", data_root=str(root), epochs=1, val_size=100, device="cpu")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, *_ = env.step(np.zeros(2, np.float32))
    assert np.isfinite(reward) and env.observation_space.contains(obs)


def test_cluster_shift_holds_out_whole_style_clusters():
    """Test clusters never appear in train or val; val shares train's clusters; every class is in
    every split; and test lies farther from the training digits than validation does."""
    labels = raw_views()[1]
    clusters = style_clusters(labels, 8, seed=0)
    train, val, test = cluster_split(labels, clusters, 0.2, 0.2, seed=0)
    assert np.unique(np.concatenate([train, val, test])).size == labels.size
    assert not set(clusters[test]) & set(clusters[train]) and not set(clusters[test]) & set(clusters[val])
    assert set(clusters[val]) <= set(clusters[train])
    for rows in (train, val, test):
        assert np.array_equal(np.unique(labels[rows]), np.arange(10))
    assert abs(test.size - 400) < 80 and abs(val.size - 400) <= 10

    pix = raw_views()[0]["pix"].astype(np.float64)

    def nearest_train(rows: np.ndarray) -> float:
        return float(pairwise_distances_argmin_min(pix[rows], pix[train])[1].mean())

    assert nearest_train(test) > 1.1 * nearest_train(val)


def test_noise_shift_perturbs_test_only(tmp_path):
    clean = load_npz(write_mfeat_custom(tmp_path / "a"))
    noisy = load_npz(write_mfeat_custom(tmp_path / "b", shift="noise", noise_std=0.5))
    assert all(torch.equal(x, y) for x, y in zip(clean.train.inputs, noisy.train.inputs, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(clean.val.inputs, noisy.val.inputs, strict=True))
    diff = torch.cat([(y - x).flatten() for x, y in zip(clean.test.inputs, noisy.test.inputs, strict=True)])
    assert abs(diff.std().item() - 0.5) < 0.02 and abs(diff.mean().item()) < 0.02


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"shift": "writers"}, "unknown shift"),
    ({"shift": "noise", "noise_std": 0.0}, "noise_std"),
    ({"shift": "clusters", "n_clusters": 1}, "n_clusters"),
    ({"views": ("fac",)}, "at least 2"),
    ({"shift": "clusters", "val_fraction": 0.6, "test_fraction": 0.5}, "fraction"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_mfeat_custom(tmp_path / "c", **kwargs)
    assert not (tmp_path / "c").exists()  # nothing half-written
