"""training/train_mml.py: a learner without RL, logged under the env wrapper's tag names."""

from __future__ import annotations

import json

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmrl_training.learner_runs import run, run_seeds
from mmrl_training.train_mml import format_table, main

TINY = {"n_train": 200, "n_val": 50, "n_test": 50}


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


@pytest.mark.parametrize("learner", ["ogm_ge", "boosting"])
def test_run_k_of_the_seed_batch_is_the_single_run_with_seed_k(learner):
    """``run_seeds`` trains the seeds as one batched engine; run k equals ``run`` (K = 1, the
    plain trainer) with seed k: history and test metrics within float tolerance."""
    kwargs = {"check_every": 1} if learner == "boosting" else {}
    batch = run_seeds("Synthetic", learner, kwargs, epochs=2, batch_size=32, seeds=[3, 5], device="cpu",
                      dataset_kwargs=TINY, progress=False)
    assert batch.inner_run.num_runs == 2 and type(batch.inner_run).__name__ == "InnerRun"
    assert batch.modalities == ("audio", "video") and [r.seed for r in batch.runs] == [3, 5]
    for r in batch.runs:
        history: list[dict] = []
        metrics, learner_obj = run("Synthetic", learner, kwargs, epochs=2, batch_size=32, seed=r.seed, device="cpu",
                                   dataset_kwargs=TINY, progress=False, history=history)
        assert len(r.history) == len(history) == 2
        for mine, single in zip(r.history, history, strict=True):
            assert mine["val_acc"] == pytest.approx(single["val_acc"], abs=1e-6)
            assert mine["train_loss"] == pytest.approx(single["train_loss"], rel=1e-4)
        assert r.test == pytest.approx(metrics, abs=1e-4)
        assert r.learner_info.keys() == learner_obj.run_info(0).keys()
    assert batch.runs[0].test != batch.runs[1].test  # two seeds, two runs


def test_train_mml_cli_reports_mean_and_std_over_seeds(tmp_path, capsys):
    run_dir = main(["--seeds", "3", "--seed", "7", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
                    "--no-progress", "--log-dir", str(tmp_path / "r"), "--dataset-kwargs", "n_train=200",
                    "n_val=50", "n_test=50"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["seeds"] == [7, 8, 9] and [r["seed"] for r in results["runs"]] == [7, 8, 9]
    accs = [r["test"]["fused_acc"] for r in results["runs"]]
    assert results["test_mean"]["fused_acc"] == pytest.approx(sum(accs) / 3)
    assert results["test_std"]["fused_acc"] > 0 and "test" not in results
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["seeds"] == 3
    assert sorted(p.name for p in run_dir.glob("seed_*")) == ["seed_7", "seed_8", "seed_9"]  # TensorBoard per seed
    out = capsys.readouterr().out
    mean, std = 100 * results["test_mean"]["fused_acc"], 100 * results["test_std"]["fused_acc"]
    assert f"{mean:.2f} ± {std:.2f}" in out and "mean ± std over 3" in out and "seeds 7-9" in out


def test_best_val_selection_reports_each_seeds_best_validation_epoch(tmp_path):
    """``select="best-val"``: each seed reports the model of its epoch with the best validation accuracy
    (the first of equals) — the same test numbers as a run stopped at that epoch; chosen on validation only."""
    batch = run_seeds("Synthetic", "joint", {}, epochs=4, batch_size=32, seeds=[3, 5], device="cpu",
                      dataset_kwargs=TINY, progress=False, select="best-val")
    for r in batch.runs:
        val = [h["val_acc"] for h in r.history]
        assert r.epoch == val.index(max(val)) + 1
        stopped, _ = run("Synthetic", "joint", {}, epochs=r.epoch, batch_size=32, seed=r.seed, device="cpu",
                         dataset_kwargs=TINY, progress=False)
        assert r.test == pytest.approx(stopped, abs=1e-4)
    last = run_seeds("Synthetic", "joint", {}, epochs=4, batch_size=32, seeds=[3, 5], device="cpu",
                     dataset_kwargs=TINY, progress=False)
    assert [r.epoch for r in last.runs] == [4, 4]  # the default: the last epoch
    with pytest.raises(ValueError, match="select must be one of"):
        run_seeds("Synthetic", "joint", {}, epochs=1, seeds=[0], dataset_kwargs=TINY, progress=False, select="test")
    run_dir = main(["--select", "best-val", "--epochs", "2", "--batch-size", "32", "--device", "cpu", "--no-progress",
                    "--log-dir", str(tmp_path / "r"), "--dataset-kwargs", "n_train=200", "n_val=50", "n_test=50"])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["select"] == "best-val" and results["runs"][0]["epoch"] in (1, 2)
