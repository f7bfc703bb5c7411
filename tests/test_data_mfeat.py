"""The embedded MFeat dataset: shipped file, views, split, standardisation, envs on it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from mmrl_env.data import load_dataset
from mmrl_env.data.mfeat import DEFAULT_VIEWS, TRIPLE, VIEWS, WEAK_PAIR, load_mfeat, raw_views, split_indices
from mmrl_env.data.mfeat_build import build, main

DIMS = {"fac": 216, "fou": 76, "kar": 64, "mor": 6, "pix": 240, "zer": 47}
FAST = {"epochs": 1, "batch_size": 64, "val_size": 100, "device": "cpu"}


def test_embedded_file_holds_the_published_data():
    views, labels = raw_views()
    assert {v: a.shape for v, a in views.items()} == {v: (2000, d) for v, d in DIMS.items()}
    assert np.array_equal(np.bincount(labels), [200] * 10)
    assert views["pix"].dtype == np.uint8 and views["pix"].max() == 6  # pixel averages 0..6, stored exactly


def test_build_round_trips_the_csvs(tmp_path, capsys):
    """The build script reads the CSV layout (header row, label last) into the embedded format."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 3)
    for v, d in DIMS.items():
        x = rng.integers(0, 7, (30, d)) if v == "pix" else rng.standard_normal((30, d)).round(4)
        table = np.column_stack([x, labels])
        np.savetxt(tmp_path / f"mfeat-{v}.csv", table, delimiter=",", header=",".join(map(str, range(d + 1))),
                   comments="", fmt="%.5g")
    with np.load(build(tmp_path, tmp_path / "out.npz")) as f:
        assert f["pix"].dtype == np.uint8 and f["kar"].dtype == np.float32
        assert np.array_equal(f["labels"], labels)
    (tmp_path / "mfeat-zer.csv").write_text("0,1\n1,3\n")
    with pytest.raises(ValueError, match="labels"):
        build(tmp_path, tmp_path / "bad.npz")
    assert main(["--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.npz")]) == 2  # one line, exit 2
    assert "mfeat-fac.csv not found" in capsys.readouterr().err


def test_default_shapes_split_sizes_and_stratification():
    ds = load_mfeat()
    assert ds.modality_names == DEFAULT_VIEWS and ds.num_classes == 10
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1200, 400, 400)
    for split, per_class in ((ds.train, 120), (ds.val, 40), (ds.test, 40)):
        assert torch.equal(torch.bincount(split.labels), torch.full((10,), per_class))
        assert [x.shape[1] for x in split.inputs] == [DIMS[v] for v in DEFAULT_VIEWS]
        assert all(x.dtype == torch.float32 for x in split.inputs)
    assert [m.encoder for m in ds.modalities] == ["mlp", "mlp"]
    assert [m.encoder_kwargs["in_dim"] for m in ds.modalities] == [DIMS[v] for v in DEFAULT_VIEWS]


def test_splits_are_disjoint_seeded_and_cover_everything():
    labels = raw_views()[1]
    parts = split_indices(labels, 0.2, 0.2, seed=0)
    every = np.concatenate(parts)
    assert every.size == 2000 and np.unique(every).size == 2000
    again = split_indices(labels, 0.2, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = split_indices(labels, 0.2, 0.2, seed=1)
    assert not np.array_equal(parts[2], other[2])
    small = load_mfeat(val_fraction=0.1, test_fraction=0.3)
    assert (len(small.train), len(small.val), len(small.test)) == (1200, 200, 600)
    with pytest.raises(ValueError, match="fraction"):
        load_mfeat(val_fraction=0.5, test_fraction=0.5)


def test_standardised_with_train_statistics_only():
    """Train features are exactly zero-mean / unit-variance (constant columns aside); val and
    test are mapped with the train statistics, so they are not — and recomputing with the
    test rows' own statistics would differ (nothing of test leaked)."""
    ds = load_mfeat(views=("kar", "pix"))
    views, _ = raw_views()
    train_rows, _, test_rows = split_indices(raw_views()[1], 0.2, 0.2, seed=0)
    kar = views["kar"].astype(np.float64)
    mean, std = kar[train_rows].mean(0), kar[train_rows].std(0)
    np.testing.assert_allclose(ds.train.inputs[0].numpy(), (kar[train_rows] - mean) / std, atol=1e-5)
    np.testing.assert_allclose(ds.test.inputs[0].numpy(), (kar[test_rows] - mean) / std, atol=1e-5)
    assert np.abs(ds.test.inputs[0].numpy().mean(0)).max() > 0.05  # test's own mean is not removed
    pix = ds.train.inputs[1].numpy()
    scale = pix.std(0)
    assert np.allclose(scale[scale > 0.5], 1.0, atol=1e-4) and np.allclose(pix.mean(0), 0.0, atol=1e-5)


def test_views_order_is_respected_and_any_set_of_2_to_6_works():
    ab, ba = load_mfeat(views=("mor", "fac")), load_mfeat(views=("fac", "mor"))
    assert ab.modality_names == ("mor", "fac") and ba.modality_names == ("fac", "mor")
    assert torch.equal(ab.train.inputs[0], ba.train.inputs[1])
    assert load_mfeat(views="pix+fou+mor").modality_names == ("pix", "fou", "mor")
    assert load_mfeat(views=list(VIEWS)).num_modalities == 6


@pytest.mark.parametrize(("views", "match"), [
    (("fac", "xyz"), "unknown MFeat view"),
    (("fac", "fac"), "more than once"),
    (("fac",), "at least 2"),
    ("fac", "at least 2"),
    (3, "list of MFeat view names"),
])
def test_bad_views_are_refused(views, match):
    with pytest.raises(ValueError, match=match):
        load_mfeat(views=views)


def test_benchmark_view_sets_are_valid():
    for views in (DEFAULT_VIEWS, WEAK_PAIR, TRIPLE):
        assert load_mfeat(views=views).modality_names == tuple(views)


@pytest.mark.parametrize("method", ["DUS", "BSS"])
@pytest.mark.parametrize("views", [None, TRIPLE])
def test_envs_reset_and_step(method, views):
    kwargs = {} if views is None else {"dataset_kwargs": {"views": list(views)}}
    env = gym.make(f"{method}-MFeat", **FAST, **kwargs)
    m = 2 if views is None else 3
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.unwrapped.modalities == (DEFAULT_VIEWS if views is None else TRIPLE)
    assert env.action_space.shape == ((m,) if method == "DUS" else (1,))
    assert env.unwrapped.inner_run.vectorize  # MLP encoders: the batched engine, as Synthetic
    done, steps = False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(np.ones(env.action_space.shape, np.float32))
        assert np.isfinite(reward) and env.observation_space.contains(obs)
        done, steps = terminated or truncated, steps + 1
    assert steps >= 1 and info["test"]["fused_acc"] > 0.5  # one epoch (BSS: of all the data) learns the digits


def test_env_is_deterministic_with_seed():
    def episode() -> list[float]:
        env = gym.make("DUS-MFeat-v0", **{**FAST, "epochs": 2})
        env.reset(seed=3)
        out = []
        for action in ([0.5, -0.5], [-1.0, 1.0], [0.0, 0.0]):
            obs, reward, *_ = env.step(np.array(action, np.float32))
            out += [reward, *obs.tolist()]
        return out

    assert episode() == episode()


def test_registered_like_every_dataset():
    assert "DUS-MFeat" in gym.registry and "BSS-MFeat-v0" in gym.registry
    assert load_dataset("MFeat", views=WEAK_PAIR).modality_names == WEAK_PAIR


def test_the_clis_take_mfeat(tmp_path, capsys):
    """train_mml --dataset MFeat, train_agent --env DUS-MFeat and evaluate --env BSS-MFeat, views included."""
    from mmrl_training.evaluate import main as evaluate
    from mmrl_training.train_agent import main as train_agent
    from mmrl_training.train_mml import main as train_mml

    fast = ["epochs=1", "val_size=100", "device=cpu"]
    run = train_mml(["--dataset", "MFeat", "--dataset-kwargs", "views=[pix,fou,mor]", "--epochs", "1", "--seeds", "2",
                     "--device", "cpu", "--log-dir", str(tmp_path / "mml")])
    assert "│ mor" in capsys.readouterr().out and (run / "results.json").is_file()
    agent = train_agent(["--env", "DUS-MFeat", "--algo", "dus-h", "-n", "2", "-f", str(tmp_path / "agent"),
                         "--eval-episodes", "1", "--baselines", "uniform", "--no-progress", "--env-kwargs", *fast])
    assert (agent / "model.json").is_file()
    out = evaluate(["--env", "BSS-MFeat", "--policies", "bss-h", "--seeds", "2", "--out", str(tmp_path / "eval"),
                    "--no-progress", "--env-kwargs", *fast, "dataset_kwargs.views=[fou,zer]"])
    md = (out / "results.md").read_text()
    assert "fou acc" in md and "zer acc" in md and "paired vs full" in md
