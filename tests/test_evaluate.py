"""training/evaluate.py: policies and learners over seeds -> Markdown/CSV table and PNG plots."""

from __future__ import annotations

import csv
import math

import gymnasium as gym
import pytest
import yaml

from agents import report
from agents.heuristics import HEURISTICS
from agents.rollout import run_episode
from training.config import parse_kv
from training.evaluate import episode_record, evaluate_policies, main, parse_args
from training.train_agent import main as train

SMALL_ENV = ["epochs=1", "batch_size=32", "val_size=50", "dataset_kwargs.n_train=192",
             "dataset_kwargs.n_val=50", "dataset_kwargs.n_test=50", "device=cpu"]
PNG = b"\x89PNG"


def rows(path) -> dict[str, dict[str, str]]:
    with path.open() as f:
        return {r["policy"]: r for r in csv.DictReader(f)}


def test_heuristics_and_a_trained_agent_on_dus(tmp_path, capsys):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text(yaml.safe_dump({"default": {"n_steps": 4, "batch_size": 4, "n_epochs": 1}}))
    run = train(["--algo", "ppo", "-c", str(cfg), "-n", "4", "-f", str(tmp_path), "--eval-episodes", "1",
                 "--baselines", "uniform", "--no-progress", "--env-kwargs", *SMALL_ENV])
    capsys.readouterr()
    out = main(["--env", "DUS-Synthetic", "--policies", f"ppo:{run},dus-h,uniform", "--seeds", "2",
                "--out", str(tmp_path / "eval"), "--no-progress"])  # heuristics take the run's env settings
    table = rows(out / "results.csv")
    assert list(table) == [f"ppo:{run.name}", "dus-h", "uniform"]
    row = table["uniform"]
    assert row["seeds"] == "2" and 0 <= float(row["fused_acc_mean"]) <= 1
    assert {"audio_f1_std", "video_map_mean", "imbalance_mean", "return_mean"} <= set(row)
    for name in ("val_acc.png", "actions.png", "cmd.png"):
        assert (out / name).read_bytes()[:4] == PNG
    printed = capsys.readouterr().out
    assert "│ dus-h" in printed and "| dus-h |" not in printed  # a rich table; Markdown only in the file
    assert str(out / "results.md") in printed and str(out / "cmd.png") in printed
    md = (out / "results.md").read_text()
    assert "fused macro-F1" in md and "| **" in md and "How to read it" in md  # the best row is marked


def test_bss_record_shows_what_the_scheduler_did():
    infos = [{"val_acc": 0.1, "s_hat": {"a": 0.5}, "d": {"a": 0.0}}]
    infos += [{"val_acc": 0.2, "s_hat": {"a": 0.6}, "d": {"a": 0.0}, "lambda": 1.0, "subset_size": 10,
               "subset_unique": 6, "balance": {"score": 0.3}}]
    record = episode_record({"infos": infos, "final": {}, "return": 1.0}, ("a",))
    assert record.curves["sequence/distinct fraction"][1] == 0.6
    assert record.curves["sequence/mean balance score"][1] == 0.3 and math.isnan(record.curves["lambda"][0])


def test_bss_policies(tmp_path):
    out = main(["--env", "BSS-Synthetic", "--policies", "bss-h,bss-l,full", "--seeds", "1", "--out", str(tmp_path),
                "--no-progress", "--env-kwargs", *SMALL_ENV, "epochs=2"])
    assert list(rows(out / "results.csv")) == ["bss-h", "bss-l", "full"]
    assert (out / "actions.png").exists() and (out / "cmd.png").exists()


def test_learners_mode(tmp_path, capsys):
    out = main(["--env", "DUS-Synthetic", "--learners", "joint,boosting", "--seeds", "1", "--out", str(tmp_path),
                "--learner-kwargs", "boosting.check_every=1", "--no-progress",
                "--env-kwargs", "epochs=1", "batch_size=32", "device=cpu", "dataset_kwargs.n_train=128",
                "dataset_kwargs.n_val=32", "dataset_kwargs.n_test=32"])
    assert list(rows(out / "results.csv")) == ["joint", "boosting"]
    assert (out / "val_acc.png").read_bytes()[:4] == PNG
    assert "│ boosting" in capsys.readouterr().out


def test_summary_imbalance_and_diverged_seeds():
    ok = report.Record({"fused_acc": 0.5, "audio_acc": 0.8, "video_acc": 0.3, "return": 2.0})
    diverged = report.Record({"return": 0.0})  # no test metrics: left out of the means
    summary = report.summarize({"p": [ok, diverged]}, ("audio", "video"))["p"]
    assert summary["fused_acc"] == (0.5, 0.0)
    assert math.isclose(summary["imbalance"][0], 0.5)
    assert summary["return"] == (1.0, 1.0)
    assert "50.00 ± 0.00" in report.markdown_table({"p": summary}, ("audio", "video"), 2)


def test_diverged_runs_are_reported_not_fatal(tmp_path):
    out = main(["--policies", "uniform,random", "--seeds", "2", "--out", str(tmp_path), "--no-progress",
                "--env-kwargs", *SMALL_ENV, "optim.lr=10000"])
    row = rows(out / "results.csv")["uniform"]
    assert row["fused_acc_mean"] == "nan" and row["return_mean"] != "nan"  # no test metrics, but a return
    assert "| n/a |" in (out / "results.md").read_text()
    assert (out / "val_acc.png").exists()


def test_policies_share_each_seeds_start_and_run_k_is_the_single_episode():
    """Common random numbers: run k of every policy's batch starts from seed k's weights and data
    (same first observation, same initial validation accuracy), and equals the single-env
    episode with seed k."""
    seeds = [10_000, 10_001, 10_002]
    args = parse_args(["--policies", "dus-h,uniform", "--no-progress", "--env-kwargs", *SMALL_ENV])
    records, modalities = evaluate_policies(args, seeds, ["dus-h", "uniform"])
    start = {name: [(r.curves["val_acc"][0], *(r.curves[f"s_hat/{m}"][0] for m in modalities)) for r in recs]
             for name, recs in records.items()}
    assert start["dus-h"] == start["uniform"]
    assert len({s[0] for s in start["uniform"]}) > 1  # ... and the seeds differ from each other
    assert records["dus-h"][0].curves["n/audio"] != records["uniform"][0].curves["n/audio"]  # the policies differ
    for k, seed in enumerate(seeds):
        env = gym.make("DUS-Synthetic", **parse_kv(SMALL_ENV))
        single = episode_record(run_episode(HEURISTICS["dus-h"](env), env, seed=seed), modalities)
        batch = records["dus-h"][k]
        assert batch.metrics == pytest.approx(single.metrics, abs=1e-3)
        for name, curve in single.curves.items():
            assert batch.curves[name] == pytest.approx(curve, abs=1e-3, nan_ok=True), name
