"""The no-code user format: one .npz per split (+ optional meta.json) → dataset ``Custom``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import mmrl_env
from mmrl_env.data import load_dataset, register_dataset, registry
from mmrl_env.data.npz import load_npz


def write(root: Path, n: dict[str, int], k: int = 3, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, size in n.items():
        y = np.arange(size) % k
        np.savez(root / f"{split}.npz", audio=rng.standard_normal((size, 8)).astype(np.float32) + y[:, None],
                 image=rng.random((size, 3, 8, 8)).astype(np.float32), labels=y)


def test_defaults_from_shapes(tmp_path: Path) -> None:
    write(tmp_path, {"train": 30, "val": 6, "test": 9})
    ds = load_npz(root=tmp_path)
    assert ds.modality_names == ("audio", "image") and ds.num_classes == 3
    assert [m.encoder for m in ds.modalities] == ["mlp", "cnn"]
    assert ds.modalities[0].encoder_kwargs == {"in_dim": 8} and ds.modalities[1].encoder_kwargs == {"in_channels": 3}
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 6, 9)


def test_val_held_out_of_train_when_absent(tmp_path: Path) -> None:
    write(tmp_path, {"train": 30, "test": 9})
    ds = load_npz(root=tmp_path, val_fraction=0.2)
    assert (len(ds.train), len(ds.val)) == (24, 6)


def test_meta_json_names_modalities_and_encoders(tmp_path: Path) -> None:
    write(tmp_path, {"train": 12, "test": 6})
    meta = {"modalities": ["image", "audio"], "num_classes": 5, "optim": {"lr": 0.1},
            "encoders": {"audio": {"name": "mlp", "kwargs": {"in_dim": 8, "hidden": 16, "out_dim": 4}}}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    ds = load_npz(root=tmp_path)
    assert ds.modality_names == ("image", "audio") and ds.num_classes == 5 and ds.optim_defaults == {"lr": 0.1}
    assert ds.modalities[1].encoder_kwargs["hidden"] == 16


def test_env_runs_on_custom_and_registered_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"train": 24, "val": 6, "test": 6})
    env = gymnasium.make("DUS-Custom", dataset_kwargs={"root": str(tmp_path)}, epochs=1, batch_size=8, device="cpu")
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(2, np.float32))
    assert np.isfinite(reward)
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))  # keep the global registry clean
    register_dataset("MyNpzData", functools.partial(load_npz, root=tmp_path))
    mmrl_env.register_envs()
    try:
        assert load_dataset("MyNpzData").num_classes == 3
        assert gymnasium.make("DUS-MyNpzData", epochs=1, batch_size=8, device="cpu") is not None
    finally:
        for method in ("DUS", "BSS"):
            gymnasium.registry.pop(f"{method}-MyNpzData", None)


@pytest.mark.parametrize(("case", "message"), [
    ("missing_test", "test.npz not found"),
    ("mismatched_n", "'audio' has 5 samples but 'labels' has 6"),
    ("wrong_shape", "samples have shape (9,), but (8,) in train.npz"),
    ("no_labels", "has no 'labels' array"),
    ("float_labels", "1-D array of integers"),
])
def test_clear_errors(tmp_path: Path, case: str, message: str) -> None:
    write(tmp_path, {"train": 12, "test": 6})
    good = dict(np.load(tmp_path / "test.npz"))
    bad = {
        "mismatched_n": {**good, "audio": good["audio"][:5]},
        "wrong_shape": {**good, "audio": np.zeros((6, 9), np.float32)},
        "no_labels": {k: v for k, v in good.items() if k != "labels"},
        "float_labels": {**good, "labels": good["labels"].astype(np.float32)},
    }
    if case == "missing_test":
        (tmp_path / "test.npz").unlink()
    else:
        np.savez(tmp_path / "test.npz", **bad[case])
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(").replace(")", r"\)")):
        load_npz(root=tmp_path)


def test_missing_root_names_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train.npz"):
        load_npz(root=tmp_path / "nope")
