"""Poor errors, by class (issue 22): a mistake is answered by a message that names the setting,
file or call and what is expected — in the library, so a Python user gets it too — never by a
Python error from deep inside (``argument after ** must be a mapping``, ``KeyError``, a
max-pool shape error at the first step) or by silence.

Four classes: CLI/YAML values, user data (``Custom``), checkpoints, the env API."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from test_bad_input import SMALL, bad_npz, cases, refused, train_refused, write

import mmrl_env  # noqa: F401 - registers the envs
from mmrl_env.data.npz import load_npz
from mmrl_env.envs.state import from_safe, save_safe, to_safe
from mmrl_env.inner_run.stream import ShuffledStream
from mmrl_training import checkpoint, train_agent, train_mml

ROOT = Path(__file__).resolve().parent.parent
SMALL_KW = {"dataset_kwargs": {"n_train": 64, "n_val": 20, "n_test": 20}, "device": "cpu", "epochs": 1}

# --- CLI/YAML values ------------------------------------------------------------------------
VALUE_CASES = [
    ("policy_kwargs as rl-zoo's Python string", ["-c", "{tmp}/pk_str.yaml"],
     r"policy_kwargs='dict\(net_arch=\[64, 64\]\)': expected a mapping.*never evaluated"),
    ("env_kwargs as a string", ["-c", "{tmp}/ek_str.yaml"], r"env_kwargs='epochs=2': expected a mapping"),
    ("env_kwargs as a list", ["-c", "{tmp}/ek_list.yaml"], r"env_kwargs=\[2\]: expected a mapping"),
    ("unknown optimizer", ["--env-kwargs", "optim.name=adamw", *SMALL],
     r"optim.name='adamw': unknown optimizer; choose one of sgd, adam"),
    ("momentum above 1", ["--env-kwargs", "optim.momentum=1.5", *SMALL], r"optim.momentum=1.5: must be in \[0, 1\]"),
    ("negative weight decay", ["--env-kwargs", "optim.weight_decay=-0.1", *SMALL], r"weight_decay=-0.1: must be in"),
    ("discount above 1", ["-params", "gamma:1.5"], r"gamma=1.5: must be in \[0, 1\]"),
    ("gae_lambda above 1", ["-params", "gae_lambda:2"], r"gae_lambda=2: must be in \[0, 1\]"),
    ("zero learning rate", ["-params", "learning_rate:0"], r"learning_rate=0: must be positive"),
    ("negative clip range", ["-params", "clip_range:-0.2"], r"clip_range=-0.2: must be positive"),
    ("negative entropy coefficient", ["-params", "ent_coef:-0.01"], r"ent_coef=-0.01: must be in \[0, inf\)"),
    ("nan max_grad_norm", ["-params", "max_grad_norm:.nan"], r"max_grad_norm=nan: (not a finite|expected a finite)"),
    ("zero agent batch", ["-params", "batch_size:0"], r"batch_size=0: must be positive"),
    ("zero-width layer", ["-params", "policy_kwargs:{net_arch: [64, 0]}"], r"every width must be a positive integer"),
    ("net_arch not a list", ["-params", "policy_kwargs:{net_arch: 64}"], r"net_arch=64: expected a list of layer"),
    ("sac tau of 0", ["--algo", "sac", "-params", "tau:0"], r"tau=0: must be in \(0, 1\]"),
    ("sac zero buffer", ["--algo", "sac", "-params", "buffer_size:0"], r"buffer_size=0: must be positive"),
    ("a2c discount below 0", ["--algo", "a2c", "-params", "gamma:-0.5"], r"gamma=-0.5: must be in \[0, 1\]"),
    ("-i of a file that is no agent", ["-i", "{tmp}/model.zip"], r"-i .*model.zip: .*model.zip does not fit this PPO"),
]


@pytest.fixture
def value_inputs(tmp_path):
    write(tmp_path / "pk_str.yaml", 'default:\n  policy_kwargs: "dict(net_arch=[64, 64])"\n')
    write(tmp_path / "ek_str.yaml", 'default:\n  env_kwargs: "epochs=2"\n')
    write(tmp_path / "ek_list.yaml", "default:\n  env_kwargs: [2]\n")
    write(tmp_path / "model.zip", "not an agent")
    return tmp_path


@pytest.mark.parametrize(("argv", "match"), cases(VALUE_CASES))
def test_cli_values_of_the_wrong_kind_or_range_are_refused_by_name(value_inputs, capsys, argv, match):
    """Each refused before a run directory exists (an unknown optimizer, a refused ``-i`` file included)."""
    train_refused(value_inputs, capsys, argv, match)


@pytest.mark.parametrize(("algo", "hp", "match"), [
    ("ppo", {"learning_rate": 0}, r"learning_rate=0: must be positive"),
    ("ppo", {"n_steps": 2.5}, r"n_steps=2.5: expected an integer"),
    ("a2c", {"gamma": -0.5}, r"gamma=-0.5: must be in \[0, 1\]"),
    ("sac", {"gradient_steps": 0}, r"gradient_steps=0: must be positive, or -1"),
])
def test_make_agent_refuses_an_agent_setting_with_the_message_of_the_cli(capsys, tmp_path, algo, hp, match):
    """One home for the agents' ranges (mmrl_agents.factory): a Python caller of make_agent and
    train_agent.py are refused alike, in the same words."""
    from mmrl_agents.factory import make_agent

    env = gym.make("DUS-Synthetic", **SMALL_KW)
    with pytest.raises(ValueError, match=match):
        make_agent(algo, env, hp)
    env.close()
    params = [f"{k}:{v}" for k, v in hp.items()]
    train_refused(tmp_path, capsys, ["--algo", algo, "-params", *params], match)


def test_settings_the_agents_take_are_not_refused_by_the_cli():
    """SAC's gradient_steps=-1 (as many as env steps) and a myopic gamma=0 are SB3's valid values."""
    from mmrl_training.run_config import check_hyperparams

    check_hyperparams("sac", {"gradient_steps": -1, "gamma": 0.0}, "cfg.yaml")
    check_hyperparams("ppo", {"gamma": 0}, "cfg.yaml")


# (case id, train_mml --config text, message): refused before the run directory
MML_CONFIG_CASES = [
    ("optim as a name", "optim: adam\n", r"optim='adam': expected a mapping"),
    ("learner_kwargs as a string", 'learner_kwargs: "alpha=1"\n', r"learner_kwargs='alpha=1': expected a mapping"),
    ("dataset_kwargs as a list", "dataset_kwargs: [1]\n", r"dataset_kwargs=\[1\]: expected a mapping"),
    ("unknown optimizer", "optim: {name: adamw}\n", r"optim.name='adamw': unknown optimizer"),
    ("negative learning rate", "optim: {lr: -1}\n", r"optim.lr=-1: must be in \(0, inf\)"),
]


@pytest.mark.parametrize(("text", "match"), [pytest.param(t, m, id=i) for i, t, m in MML_CONFIG_CASES])
def test_train_mml_config_values_are_refused_by_name(tmp_path, capsys, text, match):
    cfg = write(tmp_path / "cfg.yaml", text)
    refused(train_mml.main, ["--config", cfg, "-f", str(tmp_path / "runs"), "--no-progress"], capsys,
            rf"cfg.yaml: {match}")
    assert not (tmp_path / "runs").exists()


# --- user data (Custom) -----------------------------------------------------------------------
def meta(**fields):
    return lambda root: (root / "meta.json").write_text(json.dumps(fields))


def with_labels(train=None, test=None):
    def change(split):
        def apply(arrays):
            arrays["labels"] = split(arrays["labels"])
            return arrays
        return apply
    return {k: change(v) for k, v in (("train", train), ("test", test)) if v is not None}


def huge(arrays):
    arrays["a"] = arrays["a"].astype(np.float64)
    arrays["a"][5, 2] = 1e30
    return arrays


def images(size):
    def apply(arrays):
        arrays["a"] = np.ones((len(arrays["labels"]), 3, size, size), np.float32)
        return arrays
    return apply


def custom_data(tmp_path: Path, change: dict) -> Path:
    """A good Custom data set with ``change`` applied (``npz``: split -> array edits; ``meta``: a meta.json)."""
    root = Path(bad_npz(tmp_path / "data", **change.get("npz", {})))
    if "meta" in change:
        change["meta"](root)
    return root


# (case id, how the data differs from a good Custom set, the message)
DATA_CASES = [
    ("test labels absent from training", {"npz": with_labels(test=lambda y: y + 2)},
     r"test.npz: label\(s\) \[2, 3\] never occur in train.npz"),
    ("a single class", {"npz": with_labels(train=lambda y: np.zeros_like(y))},
     r"train.npz: every training label is \[0\]; a classifier needs at least two classes"),
    ("huge finite values", {"npz": {"train": huge}},
     r"train.npz: 'a' has values beyond \+-1e\+15 in 1 sample\(s\) \(first: sample 5, largest 1e\+30\)"),
    ("encoders as names", {"meta": meta(encoders={"a": "mlp"})},
     r"meta.json: encoders\['a'\] is 'mlp'; expected \{\"name\": <encoder>"),
    ("num_classes as a word", {"meta": meta(num_classes="six")}, r"meta.json: 'num_classes' is 'six'; expected an int"),
    ("encoders null", {"meta": meta(encoders=None)}, r"meta.json: 'encoders' is None; expected a mapping"),
    ("modalities as a string", {"meta": meta(modalities="a")}, r"'modalities' is 'a'; expected a non-empty list"),
    ("misspelled field", {"meta": meta(modalites=["a"])},
     r"unknown field\(s\) \['modalites'\].*did you mean 'modalities'"),
]


@pytest.mark.parametrize(("change", "match"), [pytest.param(c, m, id=i) for i, c, m in DATA_CASES])
def test_bad_user_data_is_refused_naming_the_file_and_field(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        load_npz(custom_data(tmp_path, change))


# (case id, encoder / data change, message) — checked when the env is built, not at the first step
ENCODER_CASES = [
    ("unknown encoder", {"meta": meta(encoders={"a": {"name": "resnet9"}})},
     r"unknown encoder 'resnet9'; known encoders: mlp, cnn, resnet18"),
    ("encoder size not the data's", {"meta": meta(encoders={"a": {"name": "mlp", "kwargs": {"in_dim": 5}}})},
     r"modality 'a': encoder 'mlp' with \{'in_dim': 5\} cannot take this data's samples of shape \(3,\)"),
    ("inputs too small for the CNN", {"npz": {"train": images(4), "test": images(4)}},
     r"modality 'a': encoder 'cnn' needs .* at least 8x8 .* samples of shape \(3, 4, 4\)"),
]


@pytest.mark.parametrize(("change", "match"), [pytest.param(c, m, id=i) for i, c, m in ENCODER_CASES])
def test_an_encoder_that_cannot_take_the_data_fails_at_construction(tmp_path, change, match):
    root = custom_data(tmp_path, change)
    with pytest.raises(ValueError, match=match):
        gym.make("DUS-Custom", dataset_kwargs={"root": str(root)}, batch_size=8, epochs=1, device="cpu")


# --- checkpoints ------------------------------------------------------------------------------
def fake_checkpoint(tmp_path: Path, state: dict | None = None, files: dict | None = None) -> Path:
    ckpt = tmp_path / "checkpoints" / "step_000000000004"
    ckpt.mkdir(parents=True)
    if state is not None:
        save_safe(state, ckpt / checkpoint.STATE)
    listed = {n: checkpoint.sha256(ckpt / n) for n in [checkpoint.STATE] if (ckpt / n).exists()}
    manifest = {"format": checkpoint.FORMAT, "steps": 4, "files": listed if files is None else files}
    (ckpt / checkpoint.MANIFEST).write_text(json.dumps(manifest))
    return ckpt


@pytest.mark.parametrize(("files", "match"), [({}, "lists no state.pt"), (["state.pt"], "lists no state.pt"),
                                             ({"state.pt": "x", "../../etc/passwd": "y"}, "not a file of this")])
def test_a_manifest_that_vouches_for_nothing_is_not_intact(tmp_path, files, match):
    ckpt = fake_checkpoint(tmp_path, files=files)
    assert match in checkpoint.damage(ckpt)
    assert checkpoint.latest_checkpoint(tmp_path) is None


def good_state() -> dict:
    return {"format": checkpoint.FORMAT, "steps": 4, "env_id": "DUS-Synthetic-v0", "env": [],
            "rng": checkpoint.global_rng_state(), "agent_rng": np.random.default_rng(0).bit_generator.state,
            "agent": {"num_timesteps": 4}}


@pytest.mark.parametrize(("change", "match"), [
    ({"steps": -1}, r"steps=-1, not the checkpoint's step 4"),
    ({"steps": 8}, r"steps=8, not the checkpoint's step 4"),
    ({"agent": {"num_timesteps": "4"}}, r"agent num_timesteps='4', not a count"),
    ({"agent": {"policy": 1}}, r"agent attributes \['policy'\]"),
    ({"agent": {"num_timesteps": 4, "_current_progress_remaining": 7.0}}, r"_current_progress_remaining=7.0"),
    ({"rng": {"torch": 1}}, r"no valid global RNG state"),
    ({"env": "x"}, r"no env state"),
])
def test_values_inside_a_weights_only_state_are_checked_before_use(tmp_path, change, match):
    ckpt = fake_checkpoint(tmp_path, {**good_state(), **change})
    with pytest.raises(checkpoint.CheckpointError, match=match):
        checkpoint.load_state(ckpt)
    checkpoint.load_state(fake_checkpoint(tmp_path / "ok", good_state()))  # the unaltered state loads


def test_a_tagged_array_whose_shape_does_not_fit_its_bytes_is_refused():
    entry = to_safe(np.ones(4, np.float32))
    assert from_safe(entry).shape == (4,)
    with pytest.raises(ValueError, match=r"says shape \[1000000\] of float32 but holds 16 bytes"):
        from_safe({**entry, "shape": [10**6]})
    with pytest.raises(ValueError, match="invalid dtype"):
        from_safe({**entry, "dtype": "not a dtype"})


def test_a_sampler_state_with_indices_outside_the_split_is_refused():
    stream = ShuffledStream(10, torch.Generator())
    with pytest.raises(ValueError, match="indices outside this split of 10 samples"):
        stream.load_state_dict({"buffer": torch.tensor([3, 10**9])})


def test_a_run_folder_that_cannot_be_created_is_one_line_and_exit_1(tmp_path):
    """/sys is read-only (and root-proof): the run directory cannot be made there."""
    out = subprocess.run([sys.executable, str(ROOT / "training" / "train_agent.py"), "--algo", "uniform", "-n", "2",
                          "-f", "/sys/mmrl_runs", "--no-progress", "--env-kwargs", *SMALL], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: cannot write /sys/mmrl_runs") and "Traceback" not in out.stderr


def test_a_full_disk_during_a_checkpoint_is_one_line_and_leaves_no_partial_checkpoint(tmp_path):
    """RLIMIT_FSIZE makes the checkpoint's state.pt write fail as a full disk would."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, str(ROOT / "training" / "train_agent.py"), "--algo", "uniform", "-n", "4",
                          "--save-freq", "1", "-f", str(runs), "--no-progress", "--env-kwargs", *SMALL, "epochs=1"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         preexec_fn=limit, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith("error: cannot write ") and "state.pt" in lines[0]
    assert not list(runs.glob("*/*/checkpoints/.tmp_*")), "a half-written checkpoint was left behind"


# --- the env API ------------------------------------------------------------------------------
def test_reset_and_step_after_close_are_refused():
    env = gym.make("DUS-Synthetic", **SMALL_KW)
    env.reset(seed=0)
    env.close()
    with pytest.raises(RuntimeError, match=r"step\(\) on a closed env"):
        env.step(env.action_space.sample())
    with pytest.raises(RuntimeError, match=r"reset\(\) on a closed env"):
        env.reset(seed=0)


def test_vector_reset_and_step_after_close_are_refused():
    venv = gym.make_vec("DUS-Synthetic", num_envs=2, vectorization_mode="vector_entry_point", **SMALL_KW)
    venv.reset(seed=0)
    venv.close()
    with pytest.raises(RuntimeError, match=r"reset\(\) on a closed env"):
        venv.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"step\(\) on a closed env"):
        venv.step(venv.action_space.sample())


def test_zero_runs_is_a_value_error():
    with pytest.raises(ValueError, match="num_envs must be a positive number of inner runs, got 0"):
        gym.make_vec("DUS-Synthetic", num_envs=0, vectorization_mode="vector_entry_point", **SMALL_KW)


@pytest.mark.parametrize(("optim", "match"), [({"lr": float("nan")}, r"optim.lr=nan: expected a finite number"),
                                              ({"lr": 0.0}, r"optim.lr=0.0: must be in \(0, inf\)"),
                                              ({"name": "adamw"}, r"optim.name='adamw': unknown optimizer"),
                                              ({"step_size": 0}, r"optim.step_size=0: expected a positive")])
def test_gym_make_refuses_optimizer_settings_as_the_cli_does(tmp_path, optim, match):
    """One check (``OptimConfig``) for ``gym.make`` and the CLIs, at construction, not at the first reset."""
    with pytest.raises(ValueError, match=match):
        gym.make("DUS-Synthetic", optim=optim, **SMALL_KW)
    (key, value), = optim.items()
    with pytest.raises(SystemExit, match=rf"optim.{key}="):
        train_agent.main(["--algo", "uniform", "-f", str(tmp_path / "runs"), "--no-progress", "--env-kwargs", *SMALL,
                          f"optim.{key}={yaml.safe_dump(value).splitlines()[0]}"])
    assert not (tmp_path / "runs").exists()


# (case id, env kwargs, message): a value of the wrong kind names the setting and the form it wants
MAKE_CASES = [
    ("optim as a string", {"optim": "adam"}, r"optim='adam': expected a mapping"),
    ("optim as a list", {"optim": [1]}, r"optim=\[1\]: expected a mapping"),
    ("dataset_kwargs as a string", {"dataset_kwargs": "n_train=5"}, r"dataset_kwargs='n_train=5': expected a mapping"),
    ("learner_kwargs as a string", {"learner_kwargs": "alpha=1"}, r"learner_kwargs='alpha=1': expected a mapping"),
    ("cmd_kwargs as a number", {"cmd_kwargs": 5}, r"cmd_kwargs=5: expected a mapping"),
    ("obs_extras as a string", {"obs_extras": "val_acc"}, r"obs_extras='val_acc': expected a list of names"),
    ("misspelled dataset setting", {"dataset_kwargs": {"n_trian": 64}},
     r"unknown dataset setting\(s\) \['n_trian'\] for Synthetic.*did you mean 'n_train'"),
    ("device that is no device", {"device": "gpu"}, r"device='gpu' is not a device; use auto, cpu"),
    ("a single class", {"dataset_kwargs": {"n_train": 64, "num_classes": 1, "group_size": 1}},
     r"Synthetic num_classes=1: a classification task needs at least 2 classes"),
]


@pytest.mark.parametrize(("kwargs", "match"), [pytest.param(k, m, id=i) for i, k, m in MAKE_CASES])
def test_gym_make_names_the_setting_of_the_wrong_kind(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gym.make("DUS-Synthetic", **{**SMALL_KW, **kwargs})
