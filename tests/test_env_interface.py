"""The env's public surface after the architecture tidy: one observation builder, typed
action maps published to policies as a ControlSpec, one kwargs style (the old names,
removed before 1.0, refused naming their replacement)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from mmrl_agents.heuristics import HEURISTICS
from mmrl_env.envs.control import ControlSpec, control_of
from mmrl_env.envs.layout import ObservationExtra, ObservationLayout
from mmrl_env.samplers.curriculum import ProportionMap
from mmrl_env.samplers.unimodal import QuantityMap


def test_layout_assembles_and_slices_the_same_order():
    layout = ObservationLayout(2, 2, (ObservationExtra("val_acc", (0.0,) * 3, (1.0,) * 3),
                                      ObservationExtra("balance", (0.0, -1.0), (1.0, 1.0))))
    obs = layout.assemble(np.array([0.6, 0.2]), 0.25, np.array([0.5, -0.5]),
                          {"val_acc": np.array([0.7, 0.6, 0.3]), "balance": np.array([0.4, -2.0])})
    assert obs.shape == (layout.size,) == (2 + 2 + 1 + 2 + 3 + 2,)
    np.testing.assert_allclose(obs[layout.s_hat], [0.6, 0.2], rtol=1e-6)
    np.testing.assert_allclose(obs[layout.d], [0.0, -0.4], rtol=1e-6)  # d = ŝ − max ŝ, computed here
    assert obs[layout.progress] == pytest.approx(0.25)
    np.testing.assert_allclose(obs[layout.slice("val_acc")], [0.7, 0.6, 0.3], rtol=1e-6)
    np.testing.assert_allclose(obs[layout.slice("balance")], [0.4, -1.0])  # clipped into its bounds
    with pytest.raises(KeyError, match="val_acc, balance"):
        layout.slice("nope")
    with pytest.raises(ValueError, match="declares"):
        layout.assemble(np.zeros(2), 0.0, np.zeros(2), {"val_acc": np.zeros(2), "balance": np.zeros(2)})


def test_envs_publish_their_control_spec(small_kwargs):
    dus = gym.make("DUS-Synthetic", **small_kwargs)
    spec = control_of(dus)  # through gym.make's wrappers, no .unwrapped
    assert isinstance(spec, ControlSpec) and spec.method == "DUS" and spec.modalities == ("audio", "video")
    assert isinstance(spec.action_map, QuantityMap) and spec.action_map.shape == dus.action_space.shape
    assert spec.layout.size == dus.observation_space.shape[0] and spec.epochs == small_kwargs["epochs"]
    bss = gym.make("BSS-Synthetic", **small_kwargs, curriculum="learned")
    spec = control_of(bss)
    assert isinstance(spec.action_map, ProportionMap) and spec.settings["curriculum"] == "learned"
    # the action maps work both ways
    q = control_of(dus).action_map
    assert q.quantities(q.action(np.array([40, 24]))) == [40, 24]
    assert spec.action_map.proportion(spec.action_map.action(0.55)) == pytest.approx(0.55)


def test_heuristics_act_on_an_sb3_vec_env_through_the_spec(small_kwargs):
    venv = make_vec_env("DUS-Synthetic", n_envs=2, env_kwargs=small_kwargs, seed=0)
    policy = HEURISTICS["dus-h"](venv)
    obs = venv.reset()
    actions, _ = policy.predict(obs)
    assert actions.shape == (2, 2)
    single = HEURISTICS["dus-h"](gym.make("DUS-Synthetic", **small_kwargs))
    np.testing.assert_array_equal(actions[0], single.predict(obs[0])[0])


def test_heuristics_are_built_from_the_control_spec_alone(small_kwargs):
    """A heuristic reads nothing of its env but the ControlSpec: built from the spec, it acts as
    one built on the env (no env is made just to build it); the method is in the env's spec."""
    from mmrl_env.envs.registration import env_method

    assert env_method("DUS-Synthetic") == "DUS" and env_method("BSS-MFeat-v0") == "BSS"
    with pytest.raises(ValueError, match="not an mmrl env id"):
        env_method("CartPole-v1")
    env = gym.make("BSS-Synthetic", **small_kwargs, curriculum="rank", remeasure_every=None)
    obs, _ = env.reset(seed=0)
    for name in ("bss-h", "full", "random"):
        from_spec, from_env = HEURISTICS[name](control_of(env), seed=3), HEURISTICS[name](env, seed=3)
        np.testing.assert_array_equal(from_spec.predict(obs)[0], from_env.predict(obs)[0])
    with pytest.raises(ValueError, match="curriculum='learned'"):  # the spec's settings are checked as the env's
        HEURISTICS["bss-l"](control_of(env))


@pytest.mark.parametrize(("env_id", "old", "hint"), [
    ("DUS-Synthetic", "cmd_mode", "'cmd_mode' -> did you mean cmd_kwargs={'mode': ...}?"),
    ("DUS-Synthetic", "cmd_ema", "'cmd_ema' -> did you mean cmd_kwargs={'ema': ...}?"),
    ("DUS-Synthetic", "budget", "'budget' -> did you mean budget_mode=?"),
    ("BSS-Synthetic", "scheduler", "'scheduler' -> did you mean curriculum=?"),
    ("BSS-Synthetic", "beta", "'beta' -> did you mean curriculum_kwargs={'beta': ...}?"),
    ("BSS-Synthetic", "sampling", "'sampling' -> did you mean curriculum_kwargs={'sampling': ...}?"),
    ("BSS-Synthetic", "measure_alpha", "'measure_alpha' -> did you mean measurer_kwargs={'alpha': ...}?"),
])
def test_a_removed_kwarg_name_is_refused_naming_its_replacement(small_kwargs, env_id, old, hint):
    """0.x: the pre-rename names are no longer aliases; the unknown-keyword error names the new one."""
    for make in (lambda **kw: gym.make(env_id, **kw), lambda **kw: gym.make_vec(
            env_id, num_envs=2, vectorization_mode="vector_entry_point", **kw)):
        with pytest.raises(TypeError, match=f"unknown keyword argument\\(s\\) \\[{old!r}\\]") as err:
            make(**small_kwargs, **{old: 0.5})
        assert hint in str(err.value)


def test_mistyped_kwarg_gets_a_suggestion(small_kwargs):
    with pytest.raises(TypeError, match="'curriculm' -> did you mean 'curriculum'"):
        gym.make("BSS-Synthetic", **small_kwargs, curriculm="learned")
    with pytest.raises(ValueError, match="unknown curriculum_kwargs"):
        gym.make("BSS-Synthetic", **small_kwargs, curriculum_kwargs={"betta": 0.5})


def test_bss_measurer_mode_reaches_the_measurer(small_kwargs):
    env = gym.make("BSS-Synthetic", **small_kwargs, measurer_kwargs={"mode": "train"}).unwrapped
    assert env.measurer.mode == "train" and env.measurer.alpha == 0.2
    assert gym.make("BSS-Synthetic", **small_kwargs).unwrapped.measurer.mode == "eval"  # the default
    with pytest.raises(ValueError, match="mode must be one of"):
        gym.make("BSS-Synthetic", **small_kwargs, measurer_kwargs={"mode": "batch"})
