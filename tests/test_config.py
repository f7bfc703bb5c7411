import pytest
from stable_baselines3 import PPO

from mmrl_training.config import check_algo_kwargs, deep_merge, load_hyperparams, parse_kv


def test_parse_kv_nests_and_types():
    assert parse_kv(["epochs=4", "dataset_kwargs.n_train=500", "obs_extras=[val_acc]", "device=cpu"]) == {
        "epochs": 4, "dataset_kwargs": {"n_train": 500}, "obs_extras": ["val_acc"], "device": "cpu"}
    with pytest.raises(ValueError, match="key=value"):
        parse_kv(["epochs"])


def test_deep_merge():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}


def test_load_sections(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("default: {n_steps: 8}\nDUS-Synthetic: {n_steps: 16}\n")
    assert load_hyperparams("ppo", "DUS-Synthetic", f) == {"n_steps": 16}
    assert load_hyperparams("ppo", "BSS-Synthetic", f) == {"n_steps": 8}
    shipped = load_hyperparams("ppo", "DUS-Synthetic")  # configs/ppo.yaml: the main job on 8 batched runs
    assert (shipped["n_steps"], shipped["n_envs"]) == (64, 8)
    assert load_hyperparams("ppo", "DUS-CremaD")["n_steps"] == 256  # the default section: one env
    with pytest.raises(FileNotFoundError):
        load_hyperparams("ppo", "DUS-Synthetic", tmp_path / "missing.yaml")


def test_unknown_hyperparameter_lists_valid_ones():
    check_algo_kwargs(PPO, {"n_steps": 8, "env_kwargs": {}}, "cfg")
    with pytest.raises(ValueError, match="valid:.*n_steps"):
        check_algo_kwargs(PPO, {"n_stepz": 8}, "cfg")
