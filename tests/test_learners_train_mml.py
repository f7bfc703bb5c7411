"""training/train_mml.py: a learner without RL, logged under the env wrapper's tag names."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training.train_mml import format_table, run


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
    assert "video" in format_table(metrics, ["audio", "video"])
