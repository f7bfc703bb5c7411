"""Issue 26: the SyntheticMix task family, chance-normalised observations, pretrained policies."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from mmrl_agents.factory import make_agent
from mmrl_agents.heuristics import HEURISTICS
from mmrl_agents.heuristics.pretrained import FEATURES, load_weights, num_params, save_weights
from mmrl_training.rollout import run_episodes

import mmrl_env  # noqa: F401
from mmrl_env.data.synthetic_mix import SyntheticMix

SMALL = {"n_train": 128, "n_val": 64, "n_test": 64}


def mix_env(method: str = "DUS", k: int = 4, m: int = 2, tasks: str = "train", **kwargs):
    return gym.make_vec(f"{method}-SyntheticMix", num_envs=k, vectorization_mode="vector_entry_point",
                        dataset_kwargs={"modalities": m, "tasks": tasks, **SMALL}, epochs=1, batch_size=32,
                        device="cpu", obs_norm="chance", autoreset_mode="Disabled", **kwargs)


def test_runs_of_one_batch_draw_different_tasks_from_their_seeds() -> None:
    venv = mix_env(k=4, m=3)
    venv.reset_runs(seed=[5, 6, 7, 8])
    data = venv.trainer.dataset
    drawn = [dict(i) for i in data.run_info]
    assert len({str(i) for i in drawn}) == 4, "four seeds, four different tasks"
    assert list(data.run_classes) == [i["classes"] for i in drawn]
    alone = SyntheticMix(modalities=3, **SMALL)
    # run k's task is a function of its inner seed only: the same seed drawn alone gives the same data
    task = alone.make_task(int(venv.trainer.generators[2].initial_seed()))
    assert torch.equal(data.train.inputs[1][2], torch.from_numpy(task.splits[0][0][1]))
    # one batched engine step trains the four on their own tasks, and run 2 plays what seed 7 plays alone
    assert venv.trainer.vectorize
    actions = np.array([[0.5, -0.5, 0.0]] * 4, np.float32)
    obs, rewards, *_ = venv.step_runs(actions)
    single = mix_env(k=1, m=3)
    single.reset_runs(seed=[7])
    obs1, rewards1, *_ = single.step_runs(actions[:1])
    assert np.allclose(obs[2], obs1[0], atol=1e-4) and np.isclose(rewards[2], rewards1[0], atol=1e-3)


def test_train_and_eval_task_draws_are_disjoint() -> None:
    train, evaluation = SyntheticMix(**SMALL), SyntheticMix(tasks="eval", **SMALL)
    a, b = train.make_task(3), evaluation.make_task(3)
    assert not np.array_equal(a.splits[0][0][0], b.splits[0][0][0])
    # index 2·seed (+1 for eval): an eval task is never some training seed's task
    for s in range(20):
        assert not np.array_equal(evaluation.make_task(s).splits[0][1], train.make_task(s + 1).splits[0][1])


def test_task_family_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="2 or 3 modalities"):
        SyntheticMix(modalities=4)
    with pytest.raises(ValueError, match="'train' or 'eval'"):
        SyntheticMix(tasks="test")


def write_custom(root: Path, k: int = 5, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 96), ("val", 32), ("test", 32)):
        y = np.arange(n) % k
        np.savez(root / f"{split}.npz", a=(rng.standard_normal((n, 12)) + y[:, None]).astype(np.float32),
                 b=rng.standard_normal((n, 40)).astype(np.float32), labels=y)


def first_and_later_obs(env_id: str, dataset_kwargs: dict, method: str) -> tuple[gym.Env, np.ndarray, np.ndarray]:
    env = gym.make(env_id, dataset_kwargs=dataset_kwargs, epochs=2, batch_size=16, device="cpu",
                   obs_norm="chance", obs_extras=["val_acc"], val_size=None)
    first, _ = env.reset(seed=0)
    later, *_ = env.step(env.action_space.sample() * 0 + (0.5 if method == "BSS" else 0.0))
    return env, first, later


@pytest.mark.parametrize("method", ["DUS", "BSS"])
def test_chance_normalised_observations_mean_the_same_on_every_dataset(tmp_path: Path, method: str) -> None:
    write_custom(tmp_path / "custom")
    groups = {  # per M: datasets with other class counts, input sizes and sources
        2: {"Synthetic": {"n_train": 128, "n_val": 64, "n_test": 64},  # 8 classes, inputs 32 and 64
            "SyntheticMix": SMALL,  # 3 to 10 classes per task, inputs 8..64 zero-padded to 64
            "MFeat": {},  # real data: 10 classes, the default pair
            "Custom": {"root": str(tmp_path / "custom")}},  # 5 classes, inputs 12 and 40
        3: {"SyntheticMix": {**SMALL, "modalities": 3},
            "MFeat": {"views": ["pix", "fou", "mor"]}},  # inputs 240, 76 and 6
    }
    for m, cases in groups.items():
        spaces, firsts = [], []
        for name, kwargs in cases.items():
            env, first, later = first_and_later_obs(f"{method}-{name}", kwargs, method)
            space = env.observation_space
            assert len(env.unwrapped.control.modalities) == m
            spaces.append((space.low.tolist(), space.high.tolist()))
            firsts.append(first)
            for obs in (first, later):
                assert space.contains(obs), f"{name}: {obs} outside {space}"
            layout = env.unwrapped.control.layout
            # before any iteration every score is at chance (0), whatever the class count
            assert np.all(first[layout.s_hat] == 0) and np.all(first[layout.d] == 0)
            # the untrained model's validation accuracy is near chance, i.e. near 0, not near 1/C
            assert np.all(np.abs(first[layout.slice("val_acc")]) < 0.5), name
        assert all(sp == spaces[0] for sp in spaces), f"M = {m}: the same declared bounds on every dataset"
        # nothing dataset-specific is left in the first observation's core entries
        core = slice(0, layout.core_size)
        assert all(np.array_equal(f[core], firsts[0][core]) for f in firsts)


def test_obs_norm_none_keeps_the_v0_observation() -> None:
    raw = gym.make("DUS-Synthetic", epochs=1, device="cpu", dataset_kwargs=SMALL)
    norm = gym.make("DUS-Synthetic", epochs=1, device="cpu", dataset_kwargs=SMALL, obs_norm="chance")
    raw.reset(seed=1), norm.reset(seed=1)
    a, *_ = raw.step(np.zeros(2, np.float32))
    b, *_ = norm.step(np.zeros(2, np.float32))
    s = raw.unwrapped.control.layout.s_hat
    assert np.allclose(b[s], (a[s] - 1 / 8) / (1 - 1 / 8), atol=1e-6)  # Synthetic: 8 classes
    assert raw.observation_space.low[s].tolist() == [0, 0] and norm.observation_space.low[s].tolist() == [-1, -1]
    with pytest.raises(ValueError, match="unknown obs_norm"):
        gym.make("DUS-Synthetic", obs_norm="zscore")


@pytest.mark.parametrize(("name", "method"), [("dus-pretrained", "DUS"), ("bss-pretrained", "BSS")])
@pytest.mark.parametrize("m", [2, 3])
def test_pretrained_policies_act_like_heuristics_for_two_and_three_modalities(name: str, method: str, m: int) -> None:
    venv = mix_env(method, k=2, m=m, **({"curriculum": "rank"} if method == "BSS" else {}))
    policy = make_agent(name, venv)
    episodes = run_episodes(policy, venv, [0, 1])
    for ep in episodes:
        assert ep["length"] > 0 and "test" in ep["final"]
        assert all(np.all(np.abs(a) <= 1) for a in ep["actions"])
    assert HEURISTICS[name].env_kwargs["obs_norm"] == "chance"
    with pytest.raises(ValueError, match="obs_norm='chance'"):
        HEURISTICS[name](gym.make(f"{method}-Synthetic", device="cpu", **({"curriculum": "rank"}
                                                                            if method == "BSS" else {})))


def test_weights_are_tensors_and_json(tmp_path: Path) -> None:
    for stem in ("dus_pretrained", "bss_pretrained"):
        spec, theta = load_weights(stem)  # torch.load(weights_only=True) inside
        assert spec["obs_norm"] == "chance" and theta.size == num_params(len(FEATURES), spec["hidden"])
    theta = np.arange(num_params(len(FEATURES), 4), dtype=np.float32)
    save_weights("x", tmp_path, theta, {"method": "DUS", "hidden": 4})
    assert np.array_equal(load_weights("x", tmp_path)[1], theta)
    torch.save({"w1": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="retrain"):
        load_weights("x", tmp_path)
    (tmp_path / "x.pt").write_bytes(b"not a zip")  # a damaged or foreign file: our words, not torch's
    with pytest.raises(ValueError, match="damaged or not a tensors-only file.*retrain"):
        load_weights("x", tmp_path)


def test_a_checkpoint_restores_every_run_s_task() -> None:
    venv = mix_env(k=3)
    venv.reset_runs(seed=[1, 2, 3])
    venv.step_runs(np.zeros((3, 2), np.float32))
    other = mix_env(k=3)
    other.set_state(venv.get_state())
    a, b = venv.trainer.dataset, other.trainer.dataset
    assert list(a.run_classes) == list(b.run_classes)
    for x, y in zip(a.test.inputs, b.test.inputs, strict=True):
        assert torch.equal(x, y)
