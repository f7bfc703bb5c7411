"""Bad input on every CLI: one line on stderr, exit status 2, no traceback, and nothing
created (no run or output directory). Each case is a class of mistake a user makes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mmrl_env.data import prepare
from mmrl_training import evaluate, train_agent, train_mml
from mmrl_training.cli_errors import run_cli
from mmrl_training.config import parse_kv
from mmrl_training.run_config import resolve

SMALL = ["dataset_kwargs.n_train=64", "dataset_kwargs.n_val=20", "dataset_kwargs.n_test=20", "device=cpu"]


def refused(main, argv: list[str], capsys, match: str) -> str:
    """Run ``main`` as its ``__main__`` does; it must exit 2 with one ``error:`` line matching ``match``."""
    with pytest.raises(SystemExit) as stop:
        run_cli(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2, err
    lines = [line for line in err if "it/s" not in line]  # tqdm bars of work done before the check, if any
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in lines[0]
    assert re.search(match, lines[0]), lines[0]
    return lines[0]


def cases(table: list[tuple[str, list[str], str]]) -> list:
    """A table of (case id, argv, message) as pytest parameters (argv, match) named by the id."""
    return [pytest.param(argv, match, id=name) for name, argv, match in table]


def at(argv: list[str], tmp) -> list[str]:
    """``argv`` with ``{tmp}`` replaced by the test's tmp_path."""
    return [a.replace("{tmp}", str(tmp)) for a in argv]


def write(path, text: str):
    path.write_text(text)
    return str(path)


def bad_npz(root, **replace):
    """A Custom dataset directory whose splits are fine except for ``replace`` (split -> arrays or bytes)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 10)):
        arrays = {"a": rng.normal(size=(n, 3)).astype(np.float32), "b": rng.normal(size=(n, 4)).astype(np.float32),
                  "labels": np.arange(n) % 2}
        value = replace.get(split)
        if isinstance(value, bytes):
            (root / f"{split}.npz").write_bytes(value)
            continue
        if value is not None:
            arrays = value(arrays)
        np.savez(root / f"{split}.npz", **arrays)
    return str(root)


def with_nan(arrays):
    arrays["a"][3, 1] = np.nan
    return arrays


def with_inf(arrays):
    arrays["b"][0, 0] = np.inf
    return arrays


def empty(arrays):
    return {k: v[:0] for k, v in arrays.items()}


def truncated_npz(tmp_path) -> bytes:
    np.savez(tmp_path / "whole.npz", a=np.zeros((40, 3), np.float32), labels=np.zeros(40, np.int64))
    return (tmp_path / "whole.npz").read_bytes()[:200]


# (case id, extra argv for train_agent.py, the message it must give); "{tmp}" is the test's tmp_path
TRAIN_CASES = [
    ("epochs=0", ["--env-kwargs", "epochs=0"], "epochs=0: must be positive"),
    ("batch_size=0", ["--env-kwargs", "batch_size=0"], "batch_size=0: must be positive"),
    ("epochs=-1", ["--env-kwargs", "epochs=-1"], "epochs=-1: must be positive"),
    ("no '='", ["--env-kwargs", "epochs"], "expected key=value or key:value, got 'epochs'"),
    ("bad key", ["--env-kwargs", "epo chs=2"], "is not a setting name"),
    ("unclosed list", ["--env-kwargs", "epochs=[2"], "cannot read the value of epochs"),
    ("not a number", ["--env-kwargs", "epochs=abc"], "epochs='abc': expected an integer"),
    ("fraction for an integer", ["--env-kwargs", "epochs=2.5"], "expected an integer"),
    ("nan", ["--env-kwargs", "temperature=.nan"], "temperature=nan: not a finite number"),
    ("inf lr", ["--env-kwargs", "optim.lr=.inf"], "lr=inf: not a finite number"),
    ("negative lr", ["--env-kwargs", "optim.lr=-1e-3"], "lr=-0.001: must be positive"),
    ("misspelled env kwarg", ["--env-kwargs", "epoch=2"], r"unknown keyword argument.*'epoch'.*did you mean 'epochs'"),
    ("empty split size", ["--env-kwargs", "dataset_kwargs.n_train=0"], "n_train=0: must be positive"),
    ("value and section", ["--env-kwargs", "optim=1", "optim.lr=0.1"], "optim is given a value and nested keys"),
    ("negative steps", ["-n", "-5"], "total-timesteps must be >= 1"),
    ("negative seed", ["--seed", "-1"], "--seed must be >= 0"),
    ("zero eval episodes", ["--eval-episodes", "0"], "--eval-episodes must be >= 1"),
    ("zero save freq", ["--save-freq", "0"], "--save-freq must be >= 1"),
    ("zero kept checkpoints", ["--keep-checkpoints", "0"], "--keep-checkpoints must be >= 1"),
    ("negative eval freq", ["--eval-freq", "-3"], "--eval-freq must be >= 0"),
    ("unknown device", ["--device", "gpu"], "'gpu' is not a device"),
    ("unknown algo", ["--algo", "dqn"], "valid algos"),
    ("unknown env", ["--env", "DUS-Nope"], "valid ids"),
    ("unknown baseline", ["--algo", "uniform", "--baselines", "nope"], "unknown baseline 'nope'"),
    ("heuristic of another method", ["--env", "BSS-Synthetic", "--algo", "dus-h"], "does not apply to BSS"),
    ("baseline of another method", ["--algo", "uniform", "--baselines", "bss-h"], "does not apply to DUS"),
    ("missing config", ["-c", "{tmp}/nope.yaml"], "nope.yaml does not exist"),
    ("malformed config", ["-c", "{tmp}/bad.yaml"], r"bad.yaml is not valid YAML at line \d+"),
    ("config without a mapping", ["-c", "{tmp}/list.yaml"], "must map env ids"),
    ("config section not a mapping", ["-c", "{tmp}/flat.yaml"], "section 'default' .* must map hyperparameter"),
    ("misspelled config key", ["-c", "{tmp}/typo.yaml"], r"unknown key.*'n_step'.*did you mean 'n_steps'"),
    ("zero n_steps in config", ["-c", "{tmp}/zero.yaml"], "n_steps=0: must be positive"),
    ("log folder is a file", ["-f", "{tmp}/bad.yaml"], "-f/--log-folder .*bad.yaml: that is a file"),
    ("trust without resume", ["--trust-checkpoint"], "applies to --resume and -i/--trained-agent only"),
    ("data change without resume", ["--allow-data-change"], "--allow-data-change applies to --resume only"),
    ("misspelled optimizer class", ["--algo", "a2c", "-params", "policy_kwargs:{optimizer_class: RMSProp}"],
     r"policy_kwargs.optimizer_class='RMSProp' names no class .*did you mean RMSprop"),
    ("optimizer class that is no optimizer", ["-params", "policy_kwargs:{optimizer_class: ReLU}"],
     "optimizer_class='ReLU' names no class"),
    ("resume of a non-run", ["--resume", "{tmp}"], "no config.yaml there"),
    ("Custom NaN", ["--env", "DUS-Custom", "--env-kwargs", "dataset_kwargs.root={tmp}/nan"],
     r"train.npz: 'a' has NaN or infinite values in 1 sample\(s\) \(first: sample 3\)"),
    ("Custom inf in test", ["--env", "DUS-Custom", "--env-kwargs", "dataset_kwargs.root={tmp}/inf"],
     "test.npz: 'b' has NaN or infinite"),
    ("Custom empty split", ["--env", "DUS-Custom", "--env-kwargs", "dataset_kwargs.root={tmp}/empty"],
     "test.npz has no samples"),
    ("Custom truncated npz", ["--env", "DUS-Custom", "--env-kwargs", "dataset_kwargs.root={tmp}/trunc"],
     "train.npz is not a readable .npz file"),
    ("Custom not a zip", ["--env", "DUS-Custom", "--env-kwargs", "dataset_kwargs.root={tmp}/text"],
     "test.npz is not a readable .npz file"),
    ("Custom corrupt meta.json", ["--env", "DUS-Custom", "--env-kwargs", "dataset_kwargs.root={tmp}/meta"],
     "meta.json is damaged"),
]
if not torch.cuda.is_available():
    TRAIN_CASES.append(("cuda without a GPU", ["--device", "cuda"], "no CUDA GPU is visible"))


@pytest.fixture
def inputs(tmp_path):
    """The config files and data directories the cases point at."""
    write(tmp_path / "bad.yaml", "default:\n  n_steps: [4\n")
    write(tmp_path / "list.yaml", "- 1\n- 2\n")
    write(tmp_path / "flat.yaml", "default: 3\n")
    write(tmp_path / "typo.yaml", yaml.safe_dump({"default": {"n_step": 4}}))
    write(tmp_path / "zero.yaml", yaml.safe_dump({"default": {"n_steps": 0}}))
    bad_npz(tmp_path / "nan", train=with_nan)
    bad_npz(tmp_path / "inf", test=with_inf)
    bad_npz(tmp_path / "empty", test=empty)
    bad_npz(tmp_path / "trunc", train=truncated_npz(tmp_path))
    bad_npz(tmp_path / "text", test=b"labels,a\n1,2\n")
    bad_npz(tmp_path / "meta")
    write(tmp_path / "meta" / "meta.json", '{"modalities": ["a", ')
    return tmp_path


def train_refused(tmp, capsys, argv: list[str], match: str) -> None:
    """``train_agent.py`` with ``argv`` (``{tmp}`` filled in; small Synthetic data unless
    ``--env-kwargs`` is given) refuses with ``match`` and leaves no run directory."""
    runs = tmp / "runs"
    argv = at(argv, tmp)
    if "--env-kwargs" not in argv:
        argv += ["--env-kwargs", *SMALL]
    refused(train_agent.main, ["-f", str(runs), "--no-progress", *argv], capsys, match)
    assert not runs.exists(), "a refused run left a directory behind"


@pytest.mark.parametrize(("argv", "match"), cases(TRAIN_CASES))
def test_train_agent_refuses_bad_input_before_creating_anything(inputs, capsys, argv, match):
    train_refused(inputs, capsys, argv, match)


def test_numbers_in_scientific_notation_are_numbers():
    """PyYAML reads 1e-3 as a string; the CLIs read it as the number the user meant."""
    assert parse_kv(["optim.lr=1e-3", "x=[1e2, a]", "y=-2E-1", "s=e5"]) == {
        "optim": {"lr": 1e-3}, "x": [100.0, "a"], "y": -0.2, "s": "e5"}
    args = train_agent.parse_args(["--algo", "uniform", "--env-kwargs", "optim.lr=1e-3", *SMALL])
    assert resolve(args).env.kwargs["optim"]["lr"] == 1e-3


EVAL_CASES = [
    ("zero seeds", ["--policies", "uniform", "--seeds", "0"], "--seeds must be >= 1"),
    ("negative seeds", ["--policies", "uniform", "--seeds", "-5"], "--seeds must be >= 1"),
    ("negative first seed", ["--policies", "uniform", "--first-seed", "-1"], "--first-seed must be >= 0"),
    ("unknown policy", ["--policies", "uniform,nope"], "unknown policy 'nope'"),
    ("empty policy list", ["--policies", ","], "names no policy"),
    ("empty policy flag", ["--policies", ""], "--policies names no policy"),
    ("empty learner flag", ["--learners", ""], "--learners names no learner"),
    ("heuristic of another method", ["--env", "BSS-Synthetic", "--policies", "dus-h"], "does not apply to BSS"),
    ("run dir without a run", ["--policies", "ppo:{tmp}"], "no model.zip and config.yaml"),
    ("epochs=0", ["--policies", "uniform", "--env-kwargs", "epochs=0"], "epochs=0: must be positive"),
    ("no '='", ["--policies", "uniform", "--env-kwargs", "epochs"], "expected key=value"),
    ("learners: batch_size=0", ["--learners", "joint", "--env-kwargs", "batch_size=0"], "batch_size=0: must be"),
    ("learners: bad learner kwarg", ["--learners", "ogm_ge", "--learner-kwargs", "ogm_ge.alpha_og=1"],
     "alpha_ogm"),
    ("learners: missing data", ["--env", "DUS-Custom", "--learners", "joint", "--env-kwargs",
                                "dataset_kwargs.root={tmp}/absent"], "Custom data directory .* not found"),
    ("learners: unknown engine", ["--learners", "joint", "--env-kwargs", "engine=warp"], "engine='warp'.*sequential"),
    ("unknown baseline", ["--policies", "dus-h", "--baseline", "unifrom"], "unknown --baseline 'unifrom'"),
    ("baseline of another method", ["--env", "BSS-Synthetic", "--policies", "bss-h", "--baseline", "uniform"],
     "--baseline 'uniform' does not apply to BSS"),
    ("learners: a policy as baseline", ["--learners", "mla", "--baseline", "uniform"],
     "unknown --baseline 'uniform': in --learners mode one of"),
]


@pytest.mark.parametrize(("argv", "match"), cases(EVAL_CASES))
def test_evaluate_refuses_bad_input(tmp_path, capsys, argv, match):
    out = tmp_path / "out"
    refused(evaluate.main, ["--out", str(out), "--no-progress", *at(argv, tmp_path)], capsys, match)
    assert not out.exists()


@pytest.mark.parametrize(("text", "problem"), [("", "it is empty"), ("env: DUS-Synthetic\n", "misses settings"),
                                               ("env: [DUS\n", "ScannerError|ParserError")])
def test_evaluate_refuses_a_run_dir_with_a_damaged_config(tmp_path, capsys, text, problem):
    run = tmp_path / "run"
    run.mkdir()
    write(run / "config.yaml", text)
    (run / "model.zip").write_bytes(b"")
    out = tmp_path / "out"
    refused(evaluate.main, ["--out", str(out), "--no-progress", "--policies", f"ppo:{run}"], capsys,
            rf"config.yaml is damaged \(.*({problem}).*\): not a usable train_agent.py run directory")
    assert not out.exists()


MML_CASES = [
    ("zero epochs", ["--epochs", "0"], "--epochs must be >= 1"),
    ("zero batch size", ["--batch-size", "0"], "--batch-size must be >= 1"),
    ("negative seed", ["--seed", "-2"], "--seed must be >= 0"),
    ("zero seeds", ["--seeds", "0"], "--seeds must be >= 1"),
    ("unknown dataset", ["--dataset", "Nope"], "known datasets"),
    ("missing data", ["--dataset", "Custom", "--dataset-kwargs", "root={tmp}/absent"], "not found"),
    ("dataset setting out of range", ["--dataset-kwargs", "n_train=0"], "n_train=0: must be positive"),
    ("nan learner setting", ["--learner", "ogm_ge", "--learner-kwargs", "alpha_ogm=.nan"], "not a finite number"),
    ("misspelled learner setting", ["--learner", "ogm_ge", "--learner-kwargs", "alpha_og=1"], "alpha_ogm"),
    ("no '='", ["--learner-kwargs", "check_every"], "expected key=value"),
    ("unknown device", ["--device", "tpu0"], "is not a device"),
    ("log folder is a file", ["-f", "{tmp}/file"], "-f/--log-folder .*file: that is a file"),
]


@pytest.mark.parametrize(("argv", "match"), cases(MML_CASES))
def test_train_mml_refuses_bad_input(tmp_path, capsys, argv, match):
    write(tmp_path / "file", "x")
    refused(train_mml.main, at(argv, tmp_path), capsys, match)


@pytest.mark.parametrize(("main", "argv"), [(evaluate.main, ["--policies", "uniform", "--out"]),
                                           (train_mml.main, ["--epochs", "1", "--log-dir"])],
                         ids=["evaluate", "train_mml"])
def test_an_output_directory_that_is_a_file_is_refused(tmp_path, capsys, main, argv):
    """Said before any run trains, not as a traceback once the work is done."""
    path = write(tmp_path / "taken", "x")
    refused(main, [*argv, path, "--no-progress"], capsys, "taken: that is a file, not a directory")
    assert (tmp_path / "taken").read_text() == "x"


def test_train_mml_refuses_a_malformed_config(tmp_path, capsys):
    bad = write(tmp_path / "bad.yaml", "epochs: [2\n")
    refused(train_mml.main, ["--config", bad], capsys, r"bad.yaml is not valid YAML at line \d+")


@pytest.mark.parametrize("argv", [["--size", "0"], ["--workers", "0"], ["--frames", "-1"]])
def test_prepare_refuses_bad_numbers(tmp_path, capsys, argv):
    assert prepare.main(["cremad", "--raw", str(tmp_path), "--out", str(tmp_path / "c"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --") and not (tmp_path / "c").exists()


def test_the_script_itself_exits_2_with_one_line(tmp_path):
    """The real entry point (``python training/train_agent.py``), not just ``main``."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(root / "training" / "train_agent.py"), "-f", str(tmp_path / "r"),
                           "--env-kwargs", "epochs=0"], capture_output=True, text=True, cwd=root, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --env-kwargs epochs=0: must be positive"]
    assert not (tmp_path / "r").exists()


def test_damaged_cache_names_the_file_and_overwrite_replaces_it(tmp_path):
    from mmrl_env.data.cache import CacheMismatchError, CacheWriter, open_cache

    meta = {"dataset": "X", "clips": ["a", "b"], "splits": ["train", "test"], "classes": ["c"], "config": {}}

    def build(overwrite: bool = False):
        writer = CacheWriter(tmp_path, meta, {"audio": ((3,), "float16")}, np.zeros(2, np.int64), overwrite)
        for row in range(2):
            writer.write(row, {"audio": np.ones(3, np.float16)})
        writer.finish({})

    build()
    assert open_cache(tmp_path).arrays["audio"].shape == (2, 3)
    audio = tmp_path / "audio.npy"
    audio.write_bytes(audio.read_bytes()[:-4])  # truncated
    with pytest.raises(ValueError, match=r"audio.npy is truncated or damaged.*--overwrite"):
        open_cache(tmp_path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(manifest.read_text()[:30])  # truncated
    with pytest.raises(ValueError, match="manifest.json is damaged"):
        open_cache(tmp_path)
    with pytest.raises(CacheMismatchError, match="manifest.json is damaged.*--overwrite"):
        build()
    build(overwrite=True)
    assert open_cache(tmp_path).manifest["complete"]


def test_a_run_that_cannot_write_its_config_leaves_no_directory(tmp_path, capsys, monkeypatch):
    """A full disk while the run directory is being set up: the error, and no empty run directory."""
    from mmrl_training import run_setup

    def full(path, text):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(run_setup, "write_text_atomic", full)
    with pytest.raises(OSError, match="No space left"):
        train_agent.main(["--algo", "a2c", "-f", str(tmp_path / "runs"), "--no-progress", "--env-kwargs", *SMALL])
    assert list((tmp_path / "runs" / "a2c").iterdir()) == []


def test_a_run_that_fails_before_its_first_step_leaves_no_directory(tmp_path, capsys):
    """``-i`` with a damaged model.zip is found out only when the agent is built, after the run
    directory exists: the run removes it again (and its own folder under -tb)."""
    write(tmp_path / "model.zip", "not a zip")
    refused(train_agent.main, ["-f", str(tmp_path / "runs"), "-tb", str(tmp_path / "tb"), "-i",
                               str(tmp_path / "model.zip"), "--no-progress", "--env-kwargs", *SMALL], capsys,
            "model.zip does not fit this PPO agent or is damaged")
    left = [p for root in (tmp_path / "runs", tmp_path / "tb") if root.exists() for p in root.rglob("DUS-*")]
    assert left == []  # refused before any run folder exists, or the folders made are removed again
