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


def test_short_ids_make_envs_without_a_warning(small_kwargs):
    """``gym.make("DUS-Synthetic")`` (the README's example) warns about nothing, even with every
    warning turned into an error; the -v0 ids keep working and Gymnasium's other warnings stay."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for env_id in ("DUS-Synthetic", "BSS-Synthetic", "DUS-Synthetic-v0", "BSS-Synthetic-v0"):
            gym.make(env_id, **small_kwargs).close()
            spec = gym.spec(env_id)
            assert (spec.entry_point, spec.kwargs) == (gym.spec(f"{env_id.removesuffix('-v0')}-v0").entry_point,
                                                       gym.spec(f"{env_id.removesuffix('-v0')}-v0").kwargs)
        gym.make_vec("DUS-Synthetic", num_envs=2, vectorization_mode="vector_entry_point", **small_kwargs).close()
        with pytest.raises(UserWarning, match="Using the latest versioned environment `CartPole-v1`"):
            gym.make("CartPole")  # not ours: Gymnasium's notice is kept


def test_prepare_help_needs_no_torch():
    """Issue 27: every --help took ~15 s; prepare's now builds its parser (every dataset's raw
    layout and split help) without importing torch, scipy or torchvision."""
    code = ("import sys; from mmrl_env.data.prepare import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'torchvision', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_render_mode_none_is_accepted_and_other_modes_refused():
    """Gymnasium's convention: render_mode=None is 'no rendering'; these envs render nothing."""
    env = gym.make("DUS-Synthetic", render_mode=None, device="cpu")
    assert env.render_mode is None
    venv = gym.make_vec("DUS-Synthetic", num_envs=2, vectorization_mode="vector_entry_point", render_mode=None,
                        device="cpu")
    assert venv.render_mode is None
    with pytest.raises(mmrl_env.envs.registration.EnvKwargsError, match="render_mode='human'.*nothing to render"):
        gym.make("DUS-Synthetic", render_mode="human")
