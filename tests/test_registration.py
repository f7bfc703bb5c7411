import subprocess
import sys

import gymnasium as gym
import pytest

import mmrl_env
from mmrl_env.data import registry

DATASETS = ["Synthetic", "SyntheticMix", "MFeat", "CremaD", "KineticsSounds", "VGGSound", "Twitter2015", "Sarcasm",
            "NVGesture"]


def test_every_method_dataset_pair_has_an_id():
    for method in ("DUS", "BSS"):
        for ds in DATASETS:
            assert f"{method}-{ds}" in gym.registry
            assert f"{method}-{ds}" in mmrl_env.env_ids()


def test_import_is_cheap_no_torch():
    code = "import sys, mmrl_env, gymnasium; gymnasium.spec('DUS-Synthetic'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_id_without_loader_fails_with_clear_message(monkeypatch):
    monkeypatch.setitem(registry._LOADERS, "NotYet", None)
    with pytest.raises(NotImplementedError, match="no loader yet"):
        mmrl_env.envs.registration.make("DUS", "NotYet")


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(KeyError, match="Synthetic"):
        registry.load_dataset("Nope")


def test_user_dataset_gets_ids(monkeypatch):
    from mmrl_env.data.synthetic import load_synthetic

    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    mmrl_env.register_dataset("MyData", lambda **kw: load_synthetic(n_train=64, n_val=32, n_test=32, **kw))
    mmrl_env.register_envs()
    env = gym.make("DUS-MyData", epochs=1, batch_size=32, device="cpu")
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="identifier"):
        mmrl_env.register_dataset("bad name", load_synthetic)
