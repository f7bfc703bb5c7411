"""Every CLI writer owns its output folder while it runs (a second writer is refused, not
interleaved), and an earlier run's results are never replaced without --overwrite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from mmrl_training import evaluate, train_agent, train_mml

fcntl = pytest.importorskip("fcntl")  # the lock is POSIX flock (skipped on Windows, where it is too)

MML = ["--epochs", "1", "--batch-size", "32", "--device", "cpu", "--no-progress", "--dataset-kwargs", "n_train=64",
       "n_val=32", "n_test=32"]
EVAL = ["--policies", "uniform", "--seeds", "1", "--no-progress", "--env-kwargs", "epochs=1", "batch_size=32",
        "val_size=20", "device=cpu", "dataset_kwargs.n_train=64", "dataset_kwargs.n_val=20", "dataset_kwargs.n_test=20"]


@contextmanager
def held_by_another_writer(folder: Path) -> Iterator[None]:
    """Hold ``folder``'s lock as a second process would (a separate open file: flock conflicts)."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("process 4242\n")
        f.flush()
        yield


def test_train_mml_log_dir_is_owned_and_never_silently_replaced(tmp_path):
    log = tmp_path / "log"
    with held_by_another_writer(log), pytest.raises(SystemExit, match=r"log is in use by process 4242.*--log-dir"):
        train_mml.main([*MML, "--log-dir", str(log)])
    assert sorted(p.name for p in log.iterdir()) == [".lock"]  # nothing written beside the other writer
    train_mml.main([*MML, "--log-dir", str(log), "--seed", "1"])
    first = json.loads((log / "results.json").read_text())
    with pytest.raises(SystemExit, match=r"already holds the results of an earlier run .*--overwrite"):
        train_mml.main([*MML, "--log-dir", str(log), "--seed", "2"])
    assert json.loads((log / "results.json").read_text()) == first
    train_mml.main([*MML, "--log-dir", str(log), "--seed", "2", "--overwrite"])
    assert json.loads((log / "results.json").read_text())["seeds"] == [2]
    assert len(list(log.glob("events.out.tfevents.*"))) == 1  # the earlier run's curves are not mixed in


def test_evaluate_out_is_owned_and_never_silently_replaced(tmp_path):
    out = tmp_path / "out"
    with held_by_another_writer(out), pytest.raises(SystemExit, match="in use by process 4242.*--out"):
        evaluate.main([*EVAL, "--out", str(out)])
    evaluate.main([*EVAL, "--out", str(out)])
    first = (out / "results.csv").read_text()
    with pytest.raises(SystemExit, match=r"--out .*out already holds the results of an earlier run \(actions.png"):
        evaluate.main([*EVAL, "--out", str(out), "--first-seed", "5"])
    assert (out / "results.csv").read_text() == first
    evaluate.main([*EVAL, "--out", str(out), "--first-seed", "5", "--overwrite"])
    assert (out / "results.csv").read_text() != first


def test_runs_sharing_a_tensorboard_root_get_their_own_folders(tmp_path):
    tb = tmp_path / "tb"
    argv = ["--algo", "uniform", "-n", "2", "--eval-episodes", "1", "--baselines", "random", "--no-progress",
            "-tb", str(tb), "--env-kwargs", "epochs=1", "batch_size=32", "val_size=20", "device=cpu",
            "dataset_kwargs.n_train=64", "dataset_kwargs.n_val=20", "dataset_kwargs.n_test=20"]
    runs = [train_agent.main([*argv, "-f", str(tmp_path / f"runs{i}")]) for i in range(2)]
    folders = [Path(yaml.safe_load((r / "config.yaml").read_text())["tensorboard_log"]) for r in runs]
    assert folders == [tb / "uniform" / "DUS-Synthetic_1", tb / "uniform" / "DUS-Synthetic_2"]
    for folder in folders:
        assert len(list((folder / "env").glob("events.out.tfevents.*"))) == 1
    assert not any((tb / name).exists() for name in ("env", "hparams"))  # nothing shared at the root
    with held_by_another_writer(folders[0]), pytest.raises(SystemExit, match="tb/uniform/DUS-Synthetic_1 is in use by"):
        train_agent.main(["--resume", str(runs[0])])  # the run's TensorBoard folder is locked on resume too
