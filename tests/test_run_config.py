"""The typed run config of ``train_agent.py`` (``mmrl_training.run_config.RunConfig``): it is the
same flat ``config.yaml`` it always was (so older runs resume), a key older runs lack takes the
value they ran with, and the Ray setting travels as an argument, not as module state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mmrl_training import ray_cluster, train_agent
from mmrl_training.run_config import REQUIRED, RunConfig, make_runs, resolve

SMALL_ENV = ["epochs=1", "batch_size=32", "val_size=50", "dataset_kwargs.n_train=192",
             "dataset_kwargs.n_val=50", "dataset_kwargs.n_test=50", "device=cpu"]
# config.yaml's keys in their order since before the typed config (tools and older runs read them)
KEYS = ["env", "algo", "seed", "total_timesteps", "device", "deterministic", "eval_episodes", "eval_freq",
        "periodic_eval_episodes", "baselines", "tensorboard_log", "log_test", "n_envs", "vec_env", "ray",
        "ray_workers", "trained_agent", "save_freq", "keep_checkpoints", "hyperparams", "env_kwargs"]


def test_the_flat_config_keeps_its_keys_and_round_trips():
    args = train_agent.parse_args(["--algo", "a2c", "--seed", "3", "--baselines", "uniform,random", "-n", "40",
                                   "--save-freq", "8", "--env-kwargs", *SMALL_ENV])
    cfg = resolve(args)
    flat = cfg.to_dict()
    assert list(flat) == KEYS
    assert flat["baselines"] == ["uniform", "random"] and flat["save_freq"] == 8 and flat["seed"] == 3
    assert yaml.safe_load(yaml.safe_dump(flat, sort_keys=False)) == flat  # plain YAML
    assert RunConfig.from_dict(flat) == cfg
    assert cfg.agent.algo == "a2c" and cfg.evaluation.baselines == ("uniform", "random") and cfg.ray is None


def test_an_older_runs_config_reads_with_the_values_it_ran_with():
    """A config.yaml from before periodic evaluations, vector envs, Ray and checkpoint settings."""
    old = {"env": "DUS-Synthetic", "algo": "ppo", "seed": 1, "total_timesteps": 64, "device": "cpu",
           "eval_episodes": 2, "baselines": None, "tensorboard_log": None, "hyperparams": {"n_steps": 8},
           "env_kwargs": {"epochs": 1}}
    assert set(REQUIRED) <= set(old)
    cfg = RunConfig.from_dict(old)
    assert cfg.evaluation.freq == 0  # no periodic evaluation then
    assert (cfg.env.n_envs, cfg.env.vec_env, cfg.ray, cfg.deterministic) == (1, "batched", None, False)
    assert (cfg.output.save_freq, cfg.output.keep_checkpoints, cfg.output.log_test) == (None, 2, False)
    assert {k: v for k, v in cfg.to_dict().items() if k in old} == old


def test_an_older_runs_directory_resumes_to_the_same_result(tmp_path):
    """--resume of a run whose config.yaml holds only the keys of an older version: the final
    comparison (redone here: results.json removed) gives the same table."""
    argv = ["--algo", "uniform", "-f", str(tmp_path), "-n", "4", "--eval-episodes", "1", "--baselines", "random",
            "--no-progress", "--env-kwargs", *SMALL_ENV]
    run = train_agent.main(argv)
    first = json.loads((run / "results.json").read_text())
    flat = yaml.safe_load((run / "config.yaml").read_text())
    old = {k: v for k, v in flat.items() if k in (*REQUIRED, "baselines", "tensorboard_log")}
    (run / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    (run / "results.json").unlink()
    assert train_agent.main(["--resume", str(run), "--no-progress"]) == run
    assert json.loads((run / "results.json").read_text()) == first
    assert yaml.safe_load((run / "config.yaml").read_text()) == old  # nothing changed: not rewritten


class FakeRayVectorEnv:
    """Stands in for RayVectorEnv (no ray here): records how it was made."""

    made: list[tuple] = []

    def __init__(self, env_id, num_envs, workers, kwargs):
        FakeRayVectorEnv.made.append((env_id, num_envs, workers, kwargs))


def test_the_ray_setting_is_passed_not_read_from_module_state(monkeypatch):
    monkeypatch.setattr(ray_cluster, "RayVectorEnv", FakeRayVectorEnv)
    FakeRayVectorEnv.made.clear()
    ray = ray_cluster.RaySettings("auto", workers=4)
    make_runs("DUS-Synthetic", {"epochs": 1}, [10, 11, 12], ray)
    assert FakeRayVectorEnv.made == [("DUS-Synthetic", 3, 3, {"epochs": 1, "autoreset_mode": "Disabled"})]
    venv = make_runs("DUS-Synthetic", {"epochs": 1, "device": "cpu", "dataset_kwargs": {"n_train": 64, "n_val": 20,
                                                                                          "n_test": 20}}, [1])
    assert len(FakeRayVectorEnv.made) == 1 and venv.num_envs == 1  # without ray: in process, whatever came before
    venv.close()
    assert not [name for name, value in vars(ray_cluster).items()
                if name.startswith("_") and not name.startswith("__") and not callable(value)]


@pytest.mark.parametrize(("flags", "expected"), [
    ((None, None), None), (("local", None), ray_cluster.RaySettings("local", 1)),
    (("auto", 3), ray_cluster.RaySettings("auto", 3))])
def test_ray_flags_become_settings(monkeypatch, flags, expected):
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: None)  # the extra is not installed here
    assert ray_cluster.settings(*flags) == expected


def test_ray_flags_that_do_not_apply_are_refused(monkeypatch):
    monkeypatch.setattr(ray_cluster, "import_ray", lambda: None)
    with pytest.raises(SystemExit, match="--ray applies to --policies"):
        ray_cluster.settings("local", None, "--ray applies to --policies")
    with pytest.raises(SystemExit, match="--ray-workers applies to --ray only"):
        ray_cluster.settings(None, 2)
    args = train_agent.parse_args(["--ray", "--ray-workers", "2", "--n-envs", "1", "--env-kwargs", *SMALL_ENV])
    with pytest.raises(SystemExit, match="--n-envs 1 with --ray-workers 2: every actor hosts at least one run"):
        resolve(args)
    args = train_agent.parse_args(["--ray", "--n-envs", "2", "--env-kwargs", *SMALL_ENV])
    assert resolve(args).ray == ray_cluster.RaySettings("local", 1) and resolve(args).vectorised



PRETRAIN_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("pretrain_*.yaml"))


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=[p.stem for p in PRETRAIN_CONFIGS])
def test_the_shipped_pretraining_configs_are_valid(path):
    """training/pretrain.py's typed config reads the shipped files (a mistake shows here, not after a long run)."""
    from mmrl_training.config import read_yaml
    from mmrl_training.pretrain import PretrainConfig

    cfg = PretrainConfig.from_mapping(read_yaml(path), str(path))
    assert cfg.method == path.stem.split("_")[1].upper() and cfg.generations >= 1 and cfg.threads == 1


def test_a_pretraining_config_with_a_wrong_key_or_method_is_refused():
    from mmrl_training.pretrain import PretrainConfig

    with pytest.raises(ValueError, match=r"cfg.yaml: unknown keys \['hiden'\]; valid: method, modalities, hidden"):
        PretrainConfig.from_mapping({"hiden": 3}, "cfg.yaml")
    with pytest.raises(ValueError, match="method must be DUS or BSS, got 'AUG'"):
        PretrainConfig.from_mapping({"method": "AUG"}, "cfg.yaml")
