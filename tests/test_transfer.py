"""Issue 26: the SyntheticMix task family, chance-normalised observations, pretrained policies."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmrl_env  # noqa: F401
from mmrl_agents.factory import make_agent
from mmrl_agents.heuristics import HEURISTICS
from mmrl_agents.heuristics.pretrained import FEATURES, RULE_PARAMS, load_weights, num_params, rule_act, save_weights
from mmrl_env.data.synthetic_mix import SyntheticMix
from mmrl_training.rollout import run_episodes

SMALL = {"n_train": 128, "n_val": 64, "n_test": 64}


def mix_env(method: str = "DUS", k: int = 4, m: int = 2, tasks: str = "train", **kwargs):
    return gym.make_vec(f"{method}-SyntheticMix", num_envs=k, vectorization_mode="vector_entry_point",
                        dataset_kwargs={"modalities": m, "tasks": tasks, **SMALL}, epochs=1, batch_size=32,
                        device="cpu", obs_norm="chance", autoreset_mode="Disabled", **kwargs)


def test_runs_of_one_batch_draw_different_tasks_from_their_seeds() -> None:
    venv = mix_env(k=4, m=3)
    venv.reset_runs(seed=[5, 6, 7, 8])
    data = venv.inner_run.dataset
    drawn = [dict(i) for i in data.run_info]
    assert len({str(i) for i in drawn}) == 4, "four seeds, four different tasks"
    assert list(data.run_classes) == [i["classes"] for i in drawn]
    alone = SyntheticMix(modalities=3, **SMALL)
    # run k's task is a function of its inner seed only: the same seed drawn alone gives the same data
    task = alone.make_task(int(venv.inner_run.generators[2].initial_seed()))
    assert torch.equal(data.train.inputs[1][2], torch.from_numpy(task.splits[0][0][1]))
    # one batched engine step trains the four on their own tasks, and run 2 plays what seed 7 plays alone
    assert venv.inner_run.vectorize
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
        size = len(RULE_PARAMS) if spec.get("arch") == "gated-boost" else num_params(len(FEATURES), spec["hidden"])
        assert spec["obs_norm"] == "chance" and theta.size == size
    rule = np.array([10.0, 0.02, 0.5, 0.1, 0.5], np.float32)
    save_weights("r", tmp_path, rule, {"method": "DUS", "arch": "gated-boost"})
    assert np.array_equal(load_weights("r", tmp_path)[1], rule)
    # a file written before the rule had ``share`` (four parameters) loads as share 0: the rule it was
    torch.save({"rule": torch.from_numpy(rule[:4].copy())}, tmp_path / "old.pt")
    (tmp_path / "old.json").write_text(json.dumps({"method": "DUS", "arch": "gated-boost", "obs_norm": "chance",
                                                   "params": list(RULE_PARAMS[:4])}))
    assert np.array_equal(load_weights("old", tmp_path)[1], np.append(rule[:4], np.float32(0.0)))
    torch.save({"rule": torch.zeros(3)}, tmp_path / "r.pt")
    with pytest.raises(ValueError, match="rule parameters.*retrain"):
        load_weights("r", tmp_path)
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
    a, b = venv.inner_run.dataset, other.inner_run.dataset
    assert list(a.run_classes) == list(b.run_classes)
    for x, y in zip(a.test.inputs, b.test.inputs, strict=True):
        assert torch.equal(x, y)


def rule_obs(control, s_hat: list[float], progress: float) -> np.ndarray:
    layout = control.layout
    obs = np.zeros(layout.size, np.float32)
    obs[layout.s_hat] = s_hat
    obs[layout.d] = np.asarray(s_hat) - max(s_hat)
    obs[layout.progress] = progress
    return obs


def test_gated_boost_rule_is_dus_h_inside_its_gates_and_neutral_outside() -> None:

    for m in (2, 3):
        control = mix_env(k=1, m=m).control
        qmap = control.action_map
        rng = np.random.default_rng(m)
        for _ in range(20):  # DUS-H's kappa and dead zone, no gates: DUS-H's action
            obs = rule_obs(control, list(rng.uniform(0.0, 0.6, m)), 0.3)
            a = rule_act(np.array([[20.0, 0.02, 1.0, -1.0, 0.0]], np.float32), obs[None], control)[0]
            assert np.array_equal(a, HEURISTICS["dus-h"](mix_env(k=1, m=m)).act(obs))
        obs = rule_obs(control, [0.5] + [0.2] * (m - 1), 0.3)
        boost = rule_act(np.array([[10.0, 0.02, 0.5, 0.4, 0.0]], np.float32), obs[None], control)[0]
        n = qmap.quantities(boost)
        assert all(n[j] > n[0] for j in range(1, m)), "the modalities behind the strongest get more samples"
        for params, why in (([0.0, 0.02, 0.5, 0.4, 0.0], "kappa 0"), ([10.0, 0.4, 0.5, 0.4, 0.0], "gap under tau"),
                            ([10.0, 0.02, 0.3, 0.4, 0.0], "progress past p_end"),
                            ([10.0, 0.02, 0.5, 0.6, 0.0], "gate")):
            assert np.all(rule_act(np.array([params], np.float32), obs[None], control) == 0), why
        sharp = qmap.quantities(rule_act(np.array([[40.0, 0.02, 1.0, -1.0, 0.0]], np.float32), obs[None], control)[0])
        mild = qmap.quantities(rule_act(np.array([[40.0, 0.02, 1.0, -1.0, 0.5]], np.float32), obs[None], control)[0])
        assert sharp[0] == qmap.n_min < qmap.batch_size // 2, "share 0: the strongest may drop to the map's n_min"
        assert mild[0] == qmap.batch_size // 2 and sum(mild) == qmap.total, "share 0.5: never below B/2, same budget"
        assert all(mild[j] > mild[0] for j in range(1, m))


def test_pretrain_grid_search_writes_a_loadable_rule(tmp_path: Path) -> None:
    from mmrl_training import pretrain

    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: DUS\npolicy: gated-boost\nmodalities: [2, 3]\n"
                   "grid: {kappa: [20.0], tau: [0.02], p_end: [0.5, 1.0], gate: [-1.0], share: [0.0]}\n"
                   "tasks: 3\neval_tasks: 2\nmax_runs: 6\n"
                   "env_kwargs: {epochs: 1, batch_size: 32, dataset_kwargs: {n_train: 128, n_val: 64, n_test: 64}}\n")
    pretrain.main(["-c", str(cfg), "--out", str(tmp_path)])
    spec, rule = load_weights("dus_pretrained", tmp_path)
    assert spec["arch"] == "gated-boost" and len(spec["train_table"]) == 2
    best = spec["train_table"][0]
    assert best["train_gain"] >= spec["train_table"][1]["train_gain"]
    # shipped: the best training rule if it beat leaving sampling alone on the evaluation tasks, else neutral
    expect = [best[n] for n in RULE_PARAMS] if spec["eval_gain_vs_neutral"] > 0 else [0.0] * len(RULE_PARAMS)
    assert np.allclose(rule, expect, atol=1e-4)
    bad = tmp_path / "b.yaml"
    bad.write_text("method: BSS\npolicy: gated-boost\n")
    with pytest.raises(SystemExit):
        pretrain.main(["-c", str(bad), "--out", str(tmp_path)])


def test_floor_objective_reads_only_the_near_ceiling_tasks() -> None:
    """``objective: floor``: the lower end of the 95 % interval of a rule's mean gain over the tasks
    where leaving sampling alone already ends at >= the ceiling; no such tasks: no evidence (inf)."""
    from mmrl_training.pretrain import floor_lower_end

    gains = np.array([[-5.0, 0.1, -0.1, 0.0], [9.0, -1.0, -1.2, -0.8]])
    base = np.array([70.0, 96.0, 97.0, 99.0])  # task 0 is under-trained: its gain does not count
    low = floor_lower_end(gains, base, 95.0)
    near = gains[:, 1:]
    expected = near.mean(1) - 1.959964 * near.std(1, ddof=1) / np.sqrt(3)
    assert np.allclose(low, expected) and low[0] > -0.2 > low[1]
    assert np.isinf(floor_lower_end(gains, base, 99.5)).all()


def test_pretrain_config_refuses_an_unknown_objective() -> None:
    from mmrl_training.pretrain import PretrainConfig

    with pytest.raises(ValueError, match="objective must be one of"):
        PretrainConfig.from_mapping({"policy": "gated-boost", "objective": "median"}, "cfg.yaml")


def test_pretrain_config_refuses_a_grid_it_would_misread() -> None:
    """``policy: gated-boost``: a misspelt, missing or empty rule parameter in ``grid`` is refused when
    the config is read, naming it (a misspelt one was dropped without a word, an empty one crashed)."""
    from mmrl_training.pretrain import PretrainConfig

    grid = {"kappa": [20.0], "tau": [0.02], "p_end": [1.0], "gate": [-1.0], "share": [0.0, 0.5]}
    assert PretrainConfig.from_mapping({"policy": "gated-boost", "grid": grid}, "c.yaml").grid == grid
    with pytest.raises(ValueError, match=r"c.yaml: grid.*unknown \['kapa'\]"):
        PretrainConfig.from_mapping({"policy": "gated-boost", "grid": {**grid, "kapa": [5.0]}}, "c.yaml")
    with pytest.raises(ValueError, match=r"missing \['tau'\]"):
        PretrainConfig.from_mapping({"policy": "gated-boost", "grid": {k: v for k, v in grid.items() if k != "tau"}},
                                    "c.yaml")
    with pytest.raises(ValueError, match="p_end must be a non-empty list of numbers"):
        PretrainConfig.from_mapping({"policy": "gated-boost", "grid": {**grid, "p_end": []}}, "c.yaml")
    with pytest.raises(ValueError, match=r"share is the smallest n_j as a fraction of B, in \[0, 1\]"):
        PretrainConfig.from_mapping({"policy": "gated-boost", "grid": {**grid, "share": [0.5, 1.5]}}, "c.yaml")


def test_shipped_dus_rule_is_what_its_documented_config_selects() -> None:
    """The documented retraining command (``configs/pretrain_dus.yaml``) is the one behind the shipped
    file: the config recorded in ``dus_pretrained.json`` equals the YAML, and the shipped rule is the
    top row of the recorded search table (the floor objective's choice), which passed its checks."""
    import dataclasses

    from mmrl_training.config import read_yaml
    from mmrl_training.pretrain import PretrainConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "pretrain_dus.yaml"
    cfg = PretrainConfig.from_mapping(read_yaml(path), str(path))
    spec, rule = load_weights("dus_pretrained")
    assert spec["config"] == {k: v for k, v in dataclasses.asdict(cfg).items() if k != "out"}
    top = spec["train_table"][0]
    assert np.allclose(rule, [top[n] for n in RULE_PARAMS], atol=1e-4)
    if cfg.objective == "floor":
        assert top["near_ceiling_lower_end"] >= cfg.floor_margin
        assert spec["eval_near_ceiling_lower_end"] >= cfg.floor_margin and spec["eval_gain_vs_neutral"] > 0


def test_a_retrained_rule_in_another_folder_is_what_the_policy_plays(tmp_path: Path) -> None:
    """``pretrain.py --out DIR`` then ``weights=DIR`` (Python, or ``-params weights:DIR`` through
    ``make_agent``, as train_agent.py passes it): the policy plays DIR's rule, not the shipped one."""
    env = mix_env(k=1, m=2)
    control = env.control
    mine = np.array([40.0, 0.02, 1.0, -1.0, 0.0], np.float32)  # DUS-H-like, sharper, to the end of the run
    save_weights("dus_pretrained", tmp_path, mine, {"method": "DUS", "arch": "gated-boost", "obs_norm": "chance"})
    obs = rule_obs(control, [0.6, 0.1], 0.9)  # late in the run, where the shipped rule leaves sampling alone
    shipped = HEURISTICS["dus-pretrained"](env).predict(obs)[0]
    retrained = make_agent("dus-pretrained", env, {"weights": str(tmp_path)}).predict(obs)[0]
    assert np.array_equal(retrained, rule_act(mine[None], obs[None], control)[0])
    assert control.action_map.quantities(retrained)[1] > control.action_map.batch_size  # the weak one fed
    assert not np.array_equal(retrained, shipped)
