"""training/train_mml.py: a learner without RL, logged under the env wrapper's tag names."""

from __future__ import annotations

import json

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training.train_mml import format_table, main, run


def test_train_mml_logs_env_tags_and_reports_test_metrics(tmp_path):
    metrics, learner = run("Synthetic", "boosting", {"check_every": 1}, epochs=2, batch_size=32, seed=0,
                           device="cpu", log_dir=str(tmp_path), progress=False,
                           dataset_kwargs={"n_train": 200, "n_val": 50, "n_test": 50})
    assert {"fused_acc", "fused_f1", "fused_map", "audio_acc", "video_map"} <= set(metrics)
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/val_acc", "step/val_acc_modality/audio", "step/val_acc_modality/video",
            "step/classifiers/video", "step/omega/audio"} <= tags
    assert len(events.Scalars("step/val_acc")) == 2  # one point per epoch
    table = format_table(metrics, ["audio", "video"], "t")
    assert [c.header for c in table.columns] == ["", "acc (%)", "macro-F1 (%)", "mAP (%)"]
    assert list(table.columns[1].cells)[0] == f"{100 * metrics['fused_acc']:.2f}"  # percent, not fractions


def test_train_mml_cli_gets_a_run_directory(tmp_path, capsys):
    run_dir = main(["--learner", "boosting", "--learner-kwargs", "check_every:1", "--epochs", "1", "--batch-size", "32",
                    "--device", "cpu", "--no-progress", "-f", str(tmp_path), "--dataset-kwargs", "n_train=200",
                    "n_val=50", "n_test=50"])
    assert run_dir == tmp_path / "mml" / "Synthetic-boosting_1"
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.0 <= results["test"]["fused_acc"] <= 1.0 and "classifiers" in results["learner_info"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["learner_kwargs"] == {"check_every": 1}
    assert "train_mml.py" in (run_dir / "command.txt").read_text()
    out = capsys.readouterr().out
    assert f"{100 * results['test']['fused_acc']:.2f}" in out and "learner state at the end: classifiers/audio=" in out
    with pytest.raises(SystemExit, match=r"(?s)CremaD data not found: looked in .*nowhere"):
        main(["--dataset", "CremaD", "--data-root", str(tmp_path / "nowhere"), "-f", str(tmp_path)])
    assert not (tmp_path / "mml" / "CremaD-joint_1").exists()  # a failed run leaves no directory
