"""The newcomer's path: the data home, data_root, versioned ids, the CLIs' rl-zoo spellings,
--n-envs, -i, -n rounding, the final tables and the TensorBoard names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import mmrl_env
from mmrl_env.data.fixtures import real_cremad_rows, write_cremad, write_split_csvs
from mmrl_env.data.home import SOURCES, data_home
from mmrl_env.data.prepare import main as prepare
from mmrl_env.envs.registration import EnvKwargsError
from mmrl_training import report, train_agent
from mmrl_training.config import config_dir, parse_kv

ROOT = Path(__file__).resolve().parent.parent
SMALL_ENV = ["epochs=1", "batch_size=32", "val_size=50", "dataset_kwargs.n_train=192",
             "dataset_kwargs.n_val=50", "dataset_kwargs.n_test=50", "device=cpu"]


def write_custom(root: Path) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for split, size in {"train": 64, "val": 20, "test": 20}.items():
        y = np.arange(size) % 2
        np.savez(root / f"{split}.npz", a=rng.standard_normal((size, 4)).astype(np.float32) + y[:, None],
                 b=rng.standard_normal((size, 4)).astype(np.float32), labels=y)


def test_prepare_writes_to_the_data_home_and_the_env_finds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MMRL_DATA", str(tmp_path / "home"))
    assert data_home() == tmp_path / "home"
    with pytest.raises(FileNotFoundError) as err:
        gym.make("DUS-CremaD")
    msg = str(err.value)
    assert f"looked in {tmp_path / 'home' / 'cremad'} (the default data home: $MMRL_DATA={tmp_path / 'home'})" in msg
    assert "python -m mmrl_env.data.prepare cremad --raw <raw>\n" in msg  # no --out: the home is the default
    assert "github.com/CheyneyComputerScience/CREMA-D" in msg and "--env-kwargs data_root=<dir>" in msg
    rows = real_cremad_rows({"train": 6, "test": 3})
    write_cremad(tmp_path / "raw", rows["train"] + rows["test"])
    write_split_csvs(tmp_path / "splits", rows)
    assert prepare(["cremad", "--raw", str(tmp_path / "raw"), "--splits", str(tmp_path / "splits"),
                    "--size", "32", "--quiet"]) == 0
    assert (tmp_path / "home" / "cremad" / "manifest.json").is_file()
    env = gym.make("DUS-CremaD", epochs=1, batch_size=2, val_size=2, device="cpu",
                   dataset_kwargs={"frames": 1, "image_size": 32})
    assert len(env.unwrapped.inner_run.dataset.train) > 0


def test_every_dataset_has_a_home_directory_and_a_source(tmp_path, monkeypatch):
    from mmrl_env.data.prepare import build_parser

    monkeypatch.setenv("MMRL_DATA", str(tmp_path))
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands == set(SOURCES)
    with pytest.raises(FileNotFoundError, match=f"Custom data directory {tmp_path / 'custom'}"):
        gym.make("DUS-Custom")
    for env_id in ("DUS-Twitter2015", "BSS-NVGesture", "DUS-VGGSound", "DUS-KineticsSounds"):
        with pytest.raises(FileNotFoundError, match=f"looked in {tmp_path}/"):
            gym.make(env_id)


def test_data_root_is_short_for_dataset_kwargs_root(tmp_path):
    write_custom(tmp_path / "mine")
    env = gym.make("DUS-Custom", data_root=str(tmp_path / "mine"), epochs=1, batch_size=8, val_size=10, device="cpu")
    assert env.unwrapped.modalities == ("a", "b")
    with pytest.raises(EnvKwargsError, match="contradicts dataset_kwargs.root"):
        gym.make("DUS-Custom", data_root="x", dataset_kwargs={"root": "y"})
    with pytest.raises(FileNotFoundError, match=r"(?s)looked in .*nowhere \(given as root / data_root\).*--out "):
        gym.make("BSS-CremaD", data_root=str(tmp_path / "nowhere"))


def test_versioned_ids_with_short_aliases_and_no_warning():
    for short in mmrl_env.env_ids():
        assert short in gym.registry and f"{short}-v0" in gym.registry
    code = ("import gymnasium as gym, mmrl_env\n"
            "env = gym.make('DUS-Synthetic', epochs=1, val_size=20, device='cpu',\n"
            "               dataset_kwargs={'n_train': 64, 'n_val': 20, 'n_test': 20})\n"
            "print(env.spec.id)\n")
    out = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "DUS-Synthetic-v0"


def test_mistyped_kwarg_gets_our_message_only():
    with pytest.raises(TypeError) as err:
        gym.make("DUS-Synthetic-v0", epoch=2)
    assert "did you mean 'epochs'" in str(err.value)
    assert "was raised from the environment creator" not in str(err.value)


def test_zoo_style_pairs():
    assert parse_kv(["epochs:2", "dataset_kwargs.root=/d:x", "a:b=c"]) == {
        "epochs": 2, "dataset_kwargs": {"root": "/d:x"}, "a": "b=c"}
    with pytest.raises(ValueError, match="key=value or key:value"):
        parse_kv(["nothing"])
    assert (config_dir() / "ppo.yaml").is_file()


def tags(path: Path) -> dict[str, list[str]]:
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc.Tags()


def test_zoo_flags_rounding_tensorboard_names_and_continued_training(tmp_path, capsys):
    conf = tmp_path / "ppo.yaml"
    conf.write_text(yaml.safe_dump({"default": {"n_timesteps": 16, "n_steps": 8, "batch_size": 8, "n_epochs": 1}}))
    run = train_agent.main(["--env", "DUS-Synthetic-v0", "-conf", str(conf), "--n-timesteps", "12",
                            "-params", "learning_rate:0.01", "-f", str(tmp_path / "runs"), "--eval-episodes", "1",
                            "--baselines", "uniform", "--eval-freq", "0", "--no-progress",
                            "--env-kwargs", *[kv.replace("=", ":", 1) for kv in SMALL_ENV]])
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["total_timesteps"] == 16 and cfg["hyperparams"]["learning_rate"] == 0.01  # 12 rounded up to 2 x 8
    assert cfg["env_kwargs"]["epochs"] == 1
    captured = capsys.readouterr()
    assert "-n 12 rounded up to 16" in captured.err
    assert "Final comparison on DUS-Synthetic-v0" in captured.out and "return = the episode's summed reward" in \
        captured.out and "±" not in captured.out  # one seed: no "± 0.00"
    env_tags = tags(run / "env")
    assert {"actions/audio", "actions/video"} <= set(env_tags["histograms"])
    assert "config/text_summary" in tags(run)["tensors"]  # the resolved config in the text tab
    assert (run / "hparams").is_dir()
    # -i: continue that agent in a new run, two env copies (--vec-env dummy: SB3's DummyVecEnv)
    run2 = train_agent.main(["--env", "DUS-Synthetic", "-i", str(run), "-n", "16", "--n-envs", "2",
                             "--vec-env", "dummy", "-f", str(tmp_path / "runs"), "--eval-episodes", "1",
                             "--baselines", "uniform",
                             "--eval-freq", "8", "--no-progress", "--env-kwargs", *SMALL_ENV])
    cfg2 = yaml.safe_load((run2 / "config.yaml").read_text())
    assert cfg2["n_envs"] == 2 and cfg2["trained_agent"] == str(run / "model.zip")
    assert (run2 / "env").is_dir() and (run2 / "env_1").is_dir()
    assert json.loads((run2 / "results.json").read_text())["results"]["ppo"]["return"]
    with pytest.raises(SystemExit, match="use --vec-env batched"):
        train_agent.main(["--n-envs", "2", "--vec-env", "dummy", "--save-freq", "8", "-f", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match="a heuristic"):
        train_agent.main(["--algo", "uniform", "--n-envs", "2", "-f", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match="trained a ppo agent, not sac"):
        train_agent.main(["--algo", "sac", "-i", str(run), "-f", str(tmp_path / "runs")])
    with pytest.raises(SystemExit, match="no saved agent"):
        train_agent.main(["-i", str(tmp_path / "nope.zip"), "-f", str(tmp_path / "runs")])


def test_help_texts(capsys):
    with pytest.raises(SystemExit):
        train_agent.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out
    assert "  python training/train_agent.py --env DUS-Synthetic --algo sac -c configs/sac.yaml \\\n" in out
    for flag in ("-v LEVEL, --verbose LEVEL", "--no-progress", "-conf YAML", "-params KEY:VALUE", "--n-envs N",
                 "-i PATH, --trained-agent PATH", "--threads N", "--periodic-eval-episodes N"):
        assert flag in out, flag


def test_tables_mark_the_best_and_skip_the_spread_for_one_seed():
    summary = {"a": {"fused_acc": (0.5, 0.0), "return": (3.0, 0.0)}, "b": {"fused_acc": (0.7, 0.0),
                                                                          "return": (1.0, 0.0)}}
    assert report.cell(0.5, 0.0, 1) == "50.00" and report.cell(0.5, 0.1, 3) == "50.00 ± 10.00"
    assert report.best_rows(summary, "fused_acc") == {"b"}
    table = report.rich_table(summary, [("fused_acc", "acc", 100.0)], 1, "t", "fused_acc")
    assert list(table.columns[0].cells) == ["a", f"b {report.BEST_MARK}"]


def test_cli_typos_get_did_you_mean_and_algo_ignores_case(tmp_path, capsys):
    """Issue 27: `--env DUS-Synthtic` gets the closest id, `--algo PPO` is ppo, like gym.make."""
    from mmrl_training import evaluate
    from mmrl_training.cli_errors import UsageError

    with pytest.raises(UsageError, match="unknown env id 'DUS-Synthtic' \\(did you mean 'DUS-Synthetic'\\?\\)"):
        train_agent.main(["--env", "DUS-Synthtic", "-f", str(tmp_path)])
    with pytest.raises(UsageError, match="unknown algo 'pp0' \\(did you mean 'ppo'\\?\\)"):
        train_agent.main(["--algo", "pp0", "-f", str(tmp_path)])
    with pytest.raises(UsageError, match="did you mean 'BSS-Synthetic'"):
        evaluate.main(["--env", "bss-synthetic", "--policies", "full", "--out", str(tmp_path / "e")])
    with pytest.raises(UsageError, match="unknown policy 'dus_h' \\(did you mean 'dus-h'\\?\\)"):
        evaluate.main(["--policies", "dus_h", "--out", str(tmp_path / "e")])
    run = train_agent.main(["--algo", "DUS-H", "-n", "2", "-f", str(tmp_path), "--eval-episodes", "1",
                            "--baselines", "uniform", "--no-progress", "--env-kwargs", *SMALL_ENV])
    assert run.parent.name == "dus-h" and json.loads((run / "model.json").read_text())["heuristic"] == "dus-h"
