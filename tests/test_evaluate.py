"""training/evaluate.py: policies and learners over seeds -> Markdown/CSV table and PNG plots."""

from __future__ import annotations

import csv
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from mmrl_agents.heuristics import HEURISTICS
from mmrl_env.inner_run.build import build_inner_run
from mmrl_training import learner_runs, report
from mmrl_training.cli_errors import UsageError
from mmrl_training.config import deep_merge, parse_kv
from mmrl_training.evaluate import main, parse_args
from mmrl_training.report import episode_record
from mmrl_training.rollout import run_episode
from mmrl_training.run_config import make_runs
from mmrl_training.seed_comparison import ComparisonConfig, evaluate_policies
from mmrl_training.train_agent import main as train

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
    assert row["seeds"] == "2" and 1 < float(row["fused_acc_mean"]) <= 100  # one unit: % (points), as the tables
    assert {"audio_f1_std", "video_map_mean", "imbalance_mean", "return_mean"} <= set(row)
    for name in ("val_acc.png", "actions.png", "cmd.png"):
        assert (out / name).read_bytes()[:4] == PNG
    printed = capsys.readouterr().out
    assert "│ dus-h" in printed and "| dus-h |" not in printed  # a rich table; Markdown only in the file
    assert str(out / "results.md") in printed and str(out / "cmd.png") in printed
    md = (out / "results.md").read_text()
    assert "fused macro-F1" in md and "| **" in md and "How to read it" in md  # the best row is marked
    assert "reward='acc': the inner run's total validation gain" in md  # which reward the return is
    uniform_row = next(line for line in md.split("## paired")[0].splitlines()
                       if line.startswith(("| uniform ", "| **uniform**")))
    assert f"| {float(row['fused_acc_mean']):.2f} ± " in uniform_row  # the CSV in the table's unit
    assert "## paired vs uniform" in md and "paired vs uniform" in printed and "added" not in printed
    assert list(rows(out / "comparison.csv")) == list(table)  # uniform was among the policies: nothing added
    assert (out / "intervals.png").read_bytes()[:4] == PNG
    # --env-kwargs reach the agent too (after its run's settings): other data scores differently ...
    other = main(["--env", "DUS-Synthetic", "--policies", f"ppo:{run}", "--baseline", f"ppo:{run.name}",
                  "--seeds", "2", "--out", str(tmp_path / "other"), "--no-progress",
                  "--env-kwargs", "dataset_kwargs.seed=1"])
    agent = f"ppo:{run.name}"
    assert rows(other / "results.csv")[agent]["fused_map_mean"] != table[agent]["fused_map_mean"]
    # ... and settings that change the agent's spaces are refused before anything is written
    with pytest.raises(UsageError, match=r"observation space has shape \(10,\), the agent was trained on \(7,\)"):
        main(["--env", "DUS-Synthetic", "--policies", f"ppo:{run}", "--seeds", "1", "--out", str(tmp_path / "bad"),
              "--no-progress", "--env-kwargs", "obs_extras=[val_acc]"])
    assert not (tmp_path / "bad").exists()


def test_the_baseline_is_added_and_every_policy_compared_seed_by_seed(tmp_path, capsys):
    out = main(["--policies", "dus-h", "--seeds", "3", "--out", str(tmp_path), "--no-progress",
                "--env-kwargs", *SMALL_ENV])
    printed = capsys.readouterr().out
    assert "--baseline uniform is not among --policies: added" in printed
    means = rows(out / "results.csv")
    assert list(means) == ["dus-h", "uniform"]
    paired = rows(out / "comparison.csv")
    assert list(paired) == ["dus-h", "uniform"] and {r["baseline"] for r in paired.values()} == {"uniform"}
    row = paired["dus-h"]
    assert row["pairs"] == "3" and row["verdict"] == "no verdict"  # 3 < MIN_SEEDS: intervals, no verdict
    for metric in ("fused_acc", "fused_f1", "fused_map"):  # the mean of the differences = the difference of the means
        delta = float(means["dus-h"][f"{metric}_mean"]) - float(means["uniform"][f"{metric}_mean"])
        assert float(row[f"delta_{metric}"]) == pytest.approx(delta, abs=1e-5)
        assert float(row[f"delta_{metric}_low"]) <= float(row[f"delta_{metric}"]) <= float(row[f"delta_{metric}_high"])
    assert float(row["p_improvement"]) * 6 == pytest.approx(round(float(row["p_improvement"]) * 6))  # wins, ties of 3
    # trim_mean(x, 0.25) of 3 values trims none: the IQM is the mean here
    assert float(row["iqm_fused_acc"]) == pytest.approx(float(means["dus-h"]["fused_acc_mean"]), abs=1e-5)
    assert paired["uniform"]["delta_fused_acc"] == "0" and paired["uniform"]["verdict"] == ""
    assert (out / "intervals.png").read_bytes()[:4] == PNG
    md = (out / "results.md").read_text()
    assert "| uniform | baseline |" in md and "dus-h: no verdict (3 seed pairs, fewer than 10" in md
    assert "run --seeds 10 or more" in " ".join(printed.split())  # the terminal's caption (wrapped)


@pytest.mark.parametrize(("argv", "names", "baseline"), [
    (["--policies", "dus-h"], ["dus-h", "uniform"], "uniform"),
    (["--env", "BSS-Synthetic", "--policies", "bss-h,bss-l"], ["bss-h", "bss-l", "full"], "full"),
    (["--learners", "mla,boosting"], ["mla", "boosting", "joint"], "joint"),
    (["--learners", "mla,ogm_ge", "--baseline", "ogm_ge"], ["mla", "ogm_ge"], "ogm_ge"),
    (["--policies", "dus-h", "--baseline", "random"], ["dus-h", "random"], "random"),
    (["--policies", "ppo:runs/ppo/DUS-Synthetic_1,uniform", "--baseline", "ppo:DUS-Synthetic_1"],
     ["ppo:runs/ppo/DUS-Synthetic_1", "uniform"], "ppo:DUS-Synthetic_1"),  # a run by its row name
])
def test_the_default_baseline_does_no_rebalancing(argv, names, baseline):
    """The default baseline per mode, an explicit one, and the note when it had to be added."""
    args = parse_args(argv)
    given = len((args.policies or args.learners).split(","))
    cfg = ComparisonConfig.from_args(args)
    assert (list(cfg.names), cfg.baseline) == (names, baseline)
    assert (cfg.note is not None and "added" in cfg.note) == (len(names) > given)


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
    paired = rows(out / "comparison.csv")
    assert paired["bss-h"]["baseline"] == "full"  # BSS without a curriculum
    # one seed: a difference but no interval, so no verdict either way
    assert paired["bss-h"]["delta_fused_acc"] != "" and paired["bss-h"]["delta_fused_acc_low"] == ""
    assert paired["bss-h"]["verdict"] == "no verdict" and (out / "intervals.png").exists()


def test_learners_mode(tmp_path, capsys):
    """joint (the default baseline) is added; a learner has no return: no column in the tables
    and the terminal, empty cells in the CSV (its columns are those of policies)."""
    out = main(["--env", "DUS-Synthetic", "--learners", "boosting", "--seeds", "2", "--out", str(tmp_path),
                "--learner-kwargs", "boosting.check_every=1", "--no-progress",
                "--env-kwargs", "epochs=1", "batch_size=32", "device=cpu", "dataset_kwargs.n_train=128",
                "dataset_kwargs.n_val=32", "dataset_kwargs.n_test=32"])
    table = rows(out / "results.csv")
    assert list(table) == ["boosting", "joint"]
    assert table["joint"]["return_mean"] == "" and table["joint"]["return_std"] == ""
    assert 1 < float(table["joint"]["fused_acc_mean"]) <= 100
    assert (out / "val_acc.png").read_bytes()[:4] == PNG
    printed = capsys.readouterr().out
    assert "│ boosting" in printed and "--baseline joint is not among --learners: added" in printed
    assert "return" not in printed and "nan" not in printed
    md = (out / "results.md").read_text()
    assert "return" not in md and "nan" not in md and "## paired vs joint" in md
    assert rows(out / "comparison.csv")["boosting"]["pairs"] == "2"


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
    paired = rows(out / "comparison.csv")["random"]  # no pair of test metrics: no difference, no verdict
    assert paired["pairs"] == "0" and paired["delta_fused_acc"] == "" and paired["verdict"] == "no verdict"


def test_policies_share_each_seeds_start_and_run_k_is_the_single_episode():
    """Common random numbers: run k of every policy's batch starts from seed k's weights and data
    (same first observation, same initial validation accuracy), and equals the single-env
    episode with seed k."""
    seeds = [10_000, 10_001, 10_002]
    args = parse_args(["--policies", "dus-h,uniform", "--seeds", "3", "--first-seed", "10000", "--no-progress",
                       "--env-kwargs", *SMALL_ENV])
    cfg = ComparisonConfig.from_args(args)
    assert (cfg.seeds, cfg.names, cfg.baseline) == (tuple(seeds), ("dus-h", "uniform"), "uniform")
    result = evaluate_policies(cfg)
    records, modalities = result.records, result.modalities
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


def run_weights(trainer: Any, k: int) -> dict[str, torch.Tensor]:
    """Run k's model weights, under the model's parameter names."""
    return trainer.learner.stack.run_state_dict(k)


def start_of_runs(env_id: str, policy: str, seeds: list[int]) -> list[dict[str, Any]]:
    """What each run of ``policy``'s K-run env starts from after reset (made as evaluate.py makes
    it): the model weights, the private generator (which draws every later data order), the
    first DUS index window it would train on, the observation and the validation accuracy."""
    venv = make_runs(env_id, deep_merge(parse_kv(SMALL_ENV), HEURISTICS[policy].env_kwargs), seeds)
    obs, infos = venv.unwrapped.reset_runs(seed=seeds)
    trainer = venv.unwrapped.inner_run
    starts = [{"weights": run_weights(trainer, k), "generator": trainer.generators[k].get_state(), "obs": obs[k],
               "val_acc": infos[k]["val_acc"]} for k in range(len(seeds))]
    if env_id.startswith("DUS"):  # BSS trains on curriculum orders drawn from the generator instead
        streams = trainer.streams
        for start, stream in zip(starts, streams, strict=True):
            start["first_window"] = stream.next_window(32, 32)
    venv.close()
    return starts


def same_start(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (a["weights"].keys() == b["weights"].keys()
            and all(torch.equal(a["weights"][n], b["weights"][n]) for n in a["weights"])
            and torch.equal(a["generator"], b["generator"]) and np.array_equal(a["obs"], b["obs"])
            and a["val_acc"] == pytest.approx(b["val_acc"], abs=1e-6)
            and ("first_window" not in a or torch.equal(a["first_window"], b["first_window"])))


@pytest.mark.parametrize(("env_id", "policies"), [("DUS-Synthetic", ("dus-h", "uniform", "random")),
                                                  ("BSS-Synthetic", ("full", "bss-h", "bss-l"))])
def test_common_random_numbers_every_policy_starts_a_seed_alike(env_id, policies):
    """The paired comparison rests on this: on a given seed every policy's inner run starts from
    the same weights, the same generator (so the same data order until the policies' actions
    differ: DUS's first window, BSS's warm-up epoch) and the same validation accuracy, although
    the BSS heuristics make their envs with different curricula; run k of a K-run batch starts
    exactly as seed k alone; different seeds start differently."""
    seeds = [10_000, 10_001, 10_002]
    starts = {p: start_of_runs(env_id, p, seeds) for p in policies}
    first = starts[policies[0]]
    for p in policies[1:]:
        assert all(same_start(a, b) for a, b in zip(first, starts[p], strict=True)), p
    assert not same_start(first[0], first[1])
    for k, seed in enumerate(seeds):
        assert same_start(first[k], start_of_runs(env_id, policies[0], [seed])[0]), seed


def test_common_random_numbers_in_learners_mode():
    """Learners' seeds (learner_runs.run_seeds) start as their trainer's reset builds them: joint and
    OGM-GE share the model, so the same weights and generator per seed; MLA has another model but
    draws the same data order."""
    def start(learner: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
        trainer = build_inner_run("Synthetic", {"n_train": 64, "n_val": 16, "n_test": 16}, learner, None, 32, 1,
                                    None, "cpu", 2)
        trainer.reset([10_000, 10_001])  # as run_seeds does
        return trainer.learner.state_dict()["params"], [g.get_state() for g in trainer.generators]

    joint, ogm_ge, mla = start("joint"), start("ogm_ge"), start("mla")
    assert torch.equal(joint[0], ogm_ge[0]) and not torch.equal(joint[0][0], joint[0][1])
    for other in (ogm_ge, mla):
        assert all(torch.equal(a, b) for a, b in zip(joint[1], other[1], strict=True))


def test_boosting_draws_the_same_data_order_as_joint():
    """Boosting's ω network is built from a copy of the run's generator: on a seed it starts
    from the same generator state (so the same first data order) as joint."""
    gens = {}
    for learner in ("joint", "boosting"):
        trainer = build_inner_run("Synthetic", {"n_train": 64, "n_val": 16, "n_test": 16}, learner, None, 32, 1,
                                    None, "cpu", 1)
        trainer.reset([10_000])
        gens[learner] = trainer.generators[0].get_state()
    assert torch.equal(gens["joint"], gens["boosting"])


def test_learners_mode_takes_data_root(tmp_path):
    """``data_root=DIR`` is short for ``dataset_kwargs.root=DIR`` here too (docs/datasets.md), not refused."""
    rng = np.random.default_rng(0)
    data = tmp_path / "custom"
    data.mkdir()
    for split, n in (("train", 48), ("test", 16)):
        labels = np.arange(n) % 2
        np.savez(data / f"{split}.npz", a=(rng.normal(size=(n, 3)) + labels[:, None]).astype(np.float32),
                 b=rng.normal(size=(n, 4)).astype(np.float32), labels=labels)
    out = main(["--env", "DUS-Custom", "--learners", "joint", "--seeds", "1", "--out", str(tmp_path / "out"),
                "--no-progress", "--env-kwargs", f"data_root={data}", "epochs=1", "batch_size=16", "device=cpu"])
    assert list(rows(out / "results.csv")) == ["joint"]
    with pytest.raises(UsageError, match="contradicts dataset_kwargs.root"):
        main(["--env", "DUS-Custom", "--learners", "joint", "--out", str(tmp_path / "out2"), "--no-progress",
              "--env-kwargs", f"data_root={data}", f"dataset_kwargs.root={tmp_path}"])
    assert not (tmp_path / "out2").exists()


def test_learners_mode_selects_on_validation_when_asked(tmp_path, monkeypatch):
    seen = []
    real = learner_runs.run_seeds

    def spy(*args, **kwargs):
        seen.append(kwargs["select"])
        return real(*args, **kwargs)

    monkeypatch.setattr(learner_runs, "run_seeds", spy)
    out = main(["--env", "DUS-Synthetic", "--learners", "joint", "--seeds", "2", "--out", str(tmp_path),
                "--select", "best-val", "--no-progress", "--env-kwargs", "epochs=2", "batch_size=32", "device=cpu",
                "dataset_kwargs.n_train=128", "dataset_kwargs.n_val=32", "dataset_kwargs.n_test=32"])
    assert seen == ["best-val"]
    assert "each seed's best epoch on validation" in (out / "results.md").read_text()
    with pytest.raises(SystemExit, match="--select applies to --learners"):
        main(["--env", "DUS-Synthetic", "--policies", "uniform", "--select", "best-val", "--out", str(tmp_path / "p")])
