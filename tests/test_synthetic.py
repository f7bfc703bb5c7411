import numpy as np
import pytest
import torch

from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig
from mmrl_env.metrics import accuracy


def test_seeded_and_shaped():
    a, b = load_synthetic(seed=1), load_synthetic(seed=1)
    assert torch.equal(a.train.inputs[1], b.train.inputs[1]) and torch.equal(a.test.labels, b.test.labels)
    assert not torch.equal(load_synthetic(seed=2).train.inputs[0], a.train.inputs[0])
    assert a.modality_names == ("audio", "video") and a.num_classes == 8
    assert len(a.train) == 2000 and a.train.inputs[1].shape == (2000, 64)
    raw = load_synthetic(form="raw", n_train=50, n_val=10, n_test=10)
    assert raw.train.inputs[0].shape == (50, 1, 32, 32) and raw.train.inputs[1].shape == (50, 3, 16, 16)
    assert torch.equal(raw.train.labels, load_synthetic(n_train=50, n_val=10, n_test=10).train.labels)


def test_bad_arguments():
    with pytest.raises(ValueError, match="form"):
        load_synthetic(form="nope")
    with pytest.raises(ValueError, match="multiple"):
        load_synthetic(num_classes=7)


def _test_acc(ds, sizes, alpha):
    tr = InnerRun(ds, InnerRunConfig(epochs=8, optim=OptimConfig(lr=0.05), learner_kwargs={"alpha": alpha}), 1,
                       "cpu")
    tr.reset([0])
    tr.train(tr.total_iterations, [sizes])
    pred, y = tr.predict(tr.dataset.test)
    return accuracy(pred.fused[0], y[0]), [accuracy(z[0], y[0]) for z in pred.unimodal]


def test_task_exhibits_modality_imbalance():
    """The weak modality under joint training sits well below its alone-accuracy, and
    rebalancing the samples towards it recovers fused accuracy (docs/datasets.md "Synthetic")."""
    ds = load_synthetic()
    video_alone = _test_acc(ds, [0, 64], alpha=1.0)[1][1]
    fused_joint, (_, video_joint) = _test_acc(ds, [64, 64], alpha=0.2)
    fused_rebalanced, _ = _test_acc(ds, [16, 112], alpha=0.2)
    assert video_alone - video_joint >= 0.08
    assert fused_rebalanced > fused_joint
    assert fused_joint > max(video_joint, 0.5)


def test_raw_form_trains():
    """The CNN encoders of the raw form really fit: the training loss falls well below chance's ln K."""
    ds = load_synthetic(form="raw", n_train=256, n_val=32, n_test=32)
    assert [m.encoder for m in ds.modalities] == ["cnn", "cnn"]
    tr = InnerRun(ds, InnerRunConfig(batch_size=32, epochs=4, optim=OptimConfig(lr=0.05)), 1, "cpu")
    tr.reset([0])
    first = tr.train(1, [[32, 32]]).item()
    for _ in range(3):
        tr.train(8, [[32, 32]])
    last = tr.train(7, [[32, 32]]).item()  # the rest of epoch 4
    assert np.isfinite(first) and last < 0.6 * first and last < np.log(ds.num_classes)
