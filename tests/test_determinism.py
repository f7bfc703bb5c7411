"""The ``--deterministic`` option: the flags it sets, and how a run records and resumes it."""

from __future__ import annotations

import os

import pytest
import torch
import yaml

from mmrl_env.determinism import CUBLAS_WORKSPACE, is_deterministic, set_deterministic
from mmrl_training.train_agent import main


@pytest.fixture
def restore(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield monkeypatch
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2], flags[3]


def test_set_deterministic_flags(restore):
    torch.backends.cudnn.benchmark = True
    set_deterministic()
    assert is_deterministic() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE and not torch.backends.cudnn.benchmark
    restore.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a user's own deterministic setting is kept
    set_deterministic(warn_only=False)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    set_deterministic(False)
    assert not is_deterministic()


def test_run_records_the_option_and_resume_keeps_it(tmp_path, restore):
    args = ["--algo", "random", "-f", str(tmp_path), "-n", "2", "--eval-episodes", "1", "--baselines", "uniform",
            "--no-progress", "--device", "cpu", "--save-freq", "1", "--env-kwargs", "epochs=1", "batch_size=32",
            "val_size=20", "dataset_kwargs.n_train=64", "dataset_kwargs.n_val=20", "dataset_kwargs.n_test=20"]
    run = main(["--deterministic", *args])
    assert yaml.safe_load((run / "config.yaml").read_text())["deterministic"] is True
    assert is_deterministic()
    plain = main(args)
    assert yaml.safe_load((plain / "config.yaml").read_text())["deterministic"] is False
    with pytest.raises(SystemExit, match="--deterministic cannot change it"):
        main(["--resume", str(plain), "--deterministic"])
