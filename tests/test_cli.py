import json
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from training.train_agent import main

SMALL_ENV = ["epochs=1", "batch_size=32", "val_size=50", "dataset_kwargs.n_train=192",
             "dataset_kwargs.n_val=50", "dataset_kwargs.n_test=50", "device=cpu"]


def tags(path: Path) -> dict[str, list[str]]:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc.Tags()


def test_ppo_run_writes_agent_config_and_tensorboard(tmp_path, capsys):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"DUS-Synthetic": {"n_timesteps": 16, "n_steps": 8, "batch_size": 8, "n_epochs": 1}}))
    run = main(["--env", "DUS-Synthetic", "--algo", "ppo", "-c", str(cfg), "-f", str(tmp_path / "runs"),
                "--eval-episodes", "1", "--eval-freq", "8", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert (run / "model.zip").exists() and "train_agent" in (run / "command.txt").read_text()
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["hyperparams"]["n_steps"] == 8 and resolved["env_kwargs"]["epochs"] == 1
    env_tags = tags(run / "env")
    for tag in ("step/n/audio", "step/n/video", "step/s_hat/audio", "step/d/video", "step/reward",
                "step/val_acc", "step/val_acc_modality/video", "episode/return", "episode/test/fused_acc"):
        assert tag in env_tags["scalars"], tag
    assert {"actions/audio", "actions/video"} <= set(env_tags["histograms"])
    sb3_tags = tags(run / "sb3_1")["scalars"]
    assert "rollout/ep_rew_mean" in sb3_tags and "eval/mean_reward" in sb3_tags
    results = json.loads((run / "results.json").read_text())["results"]
    assert set(results) == {"ppo", "dus-h", "uniform", "dus-pretrained", "random"}  # the pretrained policy too
    printed = capsys.readouterr().out
    assert "Final comparison" in printed and "dus-h" in printed and "uniform" in printed
    assert 0.0 <= results["dus-h"]["test_fused_acc"][0] <= 1.0


def test_heuristic_run_logs_the_same_tags(tmp_path):
    run = main(["--env", "DUS-Synthetic", "--algo", "dus-h", "-n", "12", "-f", str(tmp_path),
                "--eval-episodes", "1", "--baselines", "uniform", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert json.loads((run / "model.json").read_text())["heuristic"] == "dus-h"
    assert {"step/n/audio", "step/d/video", "episode/return"} <= set(tags(run / "env")["scalars"])


@pytest.mark.parametrize("algo", ["a2c", "sac", "reinforce"])
def test_other_agents_train(tmp_path, algo):
    cfg = tmp_path / "c.yaml"
    extra = {"sac": {"learning_starts": 4, "batch_size": 4}, "a2c": {"n_steps": 4}, "reinforce": {"n_steps": 6}}[algo]
    cfg.write_text(yaml.safe_dump({"default": {"n_timesteps": 8, **extra}}))
    run = main(["--env", "DUS-Synthetic", "--algo", algo, "-c", str(cfg), "-f", str(tmp_path),
                "--eval-episodes", "1", "--baselines", "uniform", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert (run / "model.zip").exists()


def test_bad_cli_input_is_explained(tmp_path):
    with pytest.raises(SystemExit, match="valid algos"):
        main(["--algo", "nope", "-f", str(tmp_path)])
    with pytest.raises(SystemExit, match="valid ids"):
        main(["--env", "DUS-Nope", "-f", str(tmp_path)])
    with pytest.raises(SystemExit, match="does not apply"):
        main(["--env", "BSS-Synthetic", "--algo", "dus-h", "-f", str(tmp_path), "--no-progress"])


@pytest.mark.parametrize("algo", ["ppo", "bss-l"])
def test_bss_runs_like_dus(tmp_path, algo):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"default": {"n_timesteps": 4, **({"n_steps": 4, "batch_size": 4}
                                                                     if algo == "ppo" else {})}}))
    run = main(["--env", "BSS-Synthetic", "--algo", algo, "-c", str(cfg), "-f", str(tmp_path), "--eval-freq", "0",
                "--eval-episodes", "1", "--baselines", "full", "--no-progress", "--env-kwargs", *SMALL_ENV])
    env_tags = set(tags(run / "env")["scalars"])
    assert {"step/lambda", "step/subset_size", "step/balance/score", "step/balance/similarity",
            "step/balance/loss", "step/s_hat/video"} <= env_tags
    results = json.loads((run / "results.json").read_text())["results"]
    assert set(results) == {algo, "full"}
