"""Retrain a shipped sampling policy (``dus-pretrained`` / ``bss-pretrained``) from scratch on the
``SyntheticMix`` task family alone::

    python training/pretrain.py -c configs/pretrain_dus.yaml     # writes agents/weights/dus_pretrained.{pt,json}
    python training/pretrain.py -c configs/pretrain_bss.yaml

Why evolution strategies (Salimans et al. 2017, antithetic pairs, centred ranks) and not PPO:
the policy is a per-modality *set* network (``agents/heuristics/pretrained.py``) so one set of
weights acts for M = 2 and 3, which SB3's fixed-size policies cannot express; and ES scores a
whole candidate policy by its inner runs' final **test** accuracy on the family's tasks (fresh
recordings, so memorising the validation split's sources does not pay), compared with the
other candidates on the *same* tasks and seeds (common random numbers). All candidates of a
generation × its tasks are one batched vector env. The generations alternate between M = 2
and M = 3 envs. Every ``eval_every`` generations the current mean policy is scored against
plain joint training on held-out *evaluation* tasks (``tasks="eval"``: never training tasks)
and the best one so far is kept: selection never sees a benchmark dataset. The run stops at
``generations`` or at ``budget_minutes`` of wall time, whichever comes first, and records both.

``policy: gated-boost`` (DUS; ``configs/pretrain_dus.yaml``) replaces ES by an exhaustive search
over the five parameters of an interpretable rule (``mmrl_agents.heuristics.pretrained.rule_act``):
every grid point plays the *same* ``tasks`` training tasks per M (seeds drawn from ``seed``),
alongside "leave sampling alone" (κ = 0); the fitness of a point is its mean paired gain in test
accuracy over leaving sampling alone, over all tasks of M = 2 and 3 (the points × tasks are
chunked into batched vector envs of at most ``max_runs`` runs). With ``objective: floor`` (the
shipped config) only the points that keep the issue's floor on the family's near-ceiling tasks
compete (``floor_lower_end``). The best point is then scored on ``eval_tasks`` held-out
evaluation tasks per M (``tasks="eval"``) and shipped only if it beats leaving sampling alone
there, and, for ``floor``, keeps the floor on their near-ceiling tasks (otherwise the neutral
rule ships). Why not ES for DUS: on the family the per-task gain of any rule is noisy (±5
points) and small on average (well under a point), so 12 noisy candidates × 6 tasks per ES
generation could not rank directions (BENCHMARKS.md, issue 26); a grid of a few dozen points ×
~100 shared tasks can.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_agents.heuristics.pretrained import (
    FEATURES,
    RULE_PARAMS,
    act,
    features,
    num_params,
    rule_act,
    save_weights,
    unflatten,
)
from mmrl_env.envs.control import control_of
from mmrl_training.config import read_yaml
from mmrl_training.rollout import run_episodes

OBJECTIVES = ("mean", "floor")
Z95 = 1.959964  # the normal 95 % interval over tasks


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run: the keys of a ``configs/pretrain_*.yaml`` (recorded, but ``out``, in the
    weights' JSON). ``policy="set-mlp"``: evolution strategies, each generation scores ``2 x pairs``
    candidates on ``tasks`` tasks; every ``eval_every`` generations the mean policy meets plain joint
    training on ``eval_tasks`` held-out tasks. ``policy="gated-boost"`` (DUS): every rule of ``grid``
    on the same ``tasks`` training tasks per M, at most ``max_runs`` inner runs per batch; the best is
    confirmed on ``eval_tasks`` evaluation tasks."""

    method: str = "DUS"  # DUS or BSS
    modalities: list[int] = field(default_factory=lambda: [2, 3])  # the tasks' M (ES: the generations alternate)
    hidden: int = 16
    generations: int = 200
    pairs: int = 8
    tasks: int = 8
    sigma: float = 0.1
    lr: float = 0.03
    eval_every: int = 10
    eval_tasks: int = 32
    seed: int = 0
    budget_minutes: float = 40
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    out: str = "agents/weights"
    stem: str | None = None  # default: <method>_pretrained
    threads: int = 1
    policy: str = "set-mlp"  # set-mlp (ES) or, for DUS, gated-boost (grid search)
    grid: dict[str, list[float]] = field(default_factory=dict)  # gated-boost: the values tried per rule parameter
    max_runs: int = 512  # gated-boost: inner runs per batched vector env
    # gated-boost: how the best rule is chosen on the training tasks. "mean": the largest mean paired gain over
    # leaving sampling alone. "floor": the same, among the rules that keep the floor on the family's
    # near-ceiling tasks (where leaving sampling alone already ends at >= floor_ceiling %: nothing to recover),
    # i.e. the lower end of the 95 % interval of their mean gain >= floor_margin points
    objective: str = "mean"
    floor_ceiling: float = 95.0
    floor_margin: float = -0.2

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], where: str) -> PretrainConfig:
        """The config of a YAML mapping; an unknown key, method or policy is a ``ValueError`` naming it."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(raw) - set(names)
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: {', '.join(names)}")
        cfg = cls(**raw)
        if cfg.method not in ("DUS", "BSS"):
            raise ValueError(f"method must be DUS or BSS, got {cfg.method!r}")
        if cfg.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
        if cfg.policy not in ("set-mlp", "gated-boost") or (cfg.policy == "gated-boost" and cfg.method != "DUS"):
            raise ValueError(f"policy must be set-mlp (ES) or, for DUS, gated-boost (grid search); got {cfg.policy!r}")
        if cfg.policy == "gated-boost":
            try:
                check_grid(cfg.grid)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from err
        return cfg


def check_grid(grid: Any) -> None:
    """``grid`` (gated-boost): a non-empty list of finite numbers for each rule parameter and
    nothing else (a misspelt name would otherwise be dropped without a word)."""
    if not isinstance(grid, dict):
        raise ValueError(f"grid must map each of {list(RULE_PARAMS)} to a list of values, got {grid!r}")
    missing, unknown = [n for n in RULE_PARAMS if n not in grid], sorted(set(grid) - set(RULE_PARAMS))
    if missing or unknown:
        raise ValueError(f"grid: give a list of values for each of {list(RULE_PARAMS)} "
                         f"(missing {missing}, unknown {unknown})")
    for name in RULE_PARAMS:
        values = grid[name]
        if not isinstance(values, list) or not values or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ValueError(f"grid: {name} must be a non-empty list of numbers, got {values!r}")
    if not all(0.0 <= v <= 1.0 for v in grid["share"]):
        raise ValueError(f"grid: share is the smallest n_j as a fraction of B, in [0, 1]; got {grid['share']!r}")


class _Batch:
    """K policies, one per run (row k of ``theta``), behind the ``predict`` call run_episodes uses."""

    def __init__(self, method: str, theta: np.ndarray, hidden: int, control: Any) -> None:
        self.method, self.control = method, control
        self.theta = unflatten(theta, len(FEATURES), hidden)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return act(self.method, self.theta, features(np.asarray(obs, np.float32), self.control)), None


class _Rules:
    """K ``gated-boost`` rules, one per run (row k of ``params``)."""

    def __init__(self, params: np.ndarray, control: Any) -> None:
        self.params, self.control = params, control

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return rule_act(self.params, np.asarray(obs, np.float32), self.control), None


def make_env(cfg: PretrainConfig, m: int, tasks: str, k: int) -> Any:
    kwargs = {**cfg.env_kwargs, "obs_norm": "chance", "autoreset_mode": "Disabled", "device": "cpu"}
    if cfg.method == "BSS":
        kwargs.setdefault("curriculum", "rank")
    kwargs["dataset_kwargs"] = {**kwargs.get("dataset_kwargs", {}), "modalities": m, "tasks": tasks}
    return gym.make_vec(f"{cfg.method}-SyntheticMix", num_envs=k, vectorization_mode="vector_entry_point",
                        **kwargs)


def test_accuracy(cfg: PretrainConfig, venv: Any, theta: np.ndarray, seeds: list[int]) -> np.ndarray:
    """(K,) final test fused accuracy (points) of policy row k on run k's task (seed k); a diverged run scores 0."""
    policy = (_Rules(theta, control_of(venv)) if cfg.policy == "gated-boost"
              else _Batch(cfg.method, theta, cfg.hidden, control_of(venv)))
    episodes = run_episodes(policy, venv, seeds)
    return np.array([100.0 * ep["final"].get("test", {}).get("fused_acc", 0.0) for ep in episodes])


def centred_ranks(x: np.ndarray) -> np.ndarray:
    ranks = np.empty(x.size)
    ranks[np.argsort(x)] = np.arange(x.size)
    return ranks / (x.size - 1) - 0.5


def neutral(cfg: PretrainConfig, p: int) -> np.ndarray:
    """Parameters of the policy that leaves sampling alone (DUS: all actions equal; BSS: λ = 1)."""
    return np.zeros(p, np.float32)


def pretrain(cfg: PretrainConfig, log: Any = print) -> dict[str, Any]:
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    p = num_params(len(FEATURES), cfg.hidden)
    theta = 0.5 * rng.standard_normal(p).astype(np.float32)  # random hidden features ...
    theta[-cfg.hidden - 1:] = 0.0  # ... and a zero output layer: starts as "leave sampling alone"
    n_cand, n_tasks = 2 * cfg.pairs, cfg.tasks
    train_envs = {m: make_env(cfg, m, "train", n_cand * n_tasks) for m in cfg.modalities}
    eval_envs = {m: make_env(cfg, m, "eval", 2 * cfg.eval_tasks) for m in cfg.modalities}
    eval_seeds = list(range(cfg.eval_tasks)) * 2
    start, history, best = time.time(), [], {"gain": -np.inf}
    gen = 0

    def evaluate(theta: np.ndarray) -> float:
        gains = []
        for venv in eval_envs.values():  # the policy on rows 0..E-1, plain joint training on E..2E-1: same tasks
            rows = np.stack([theta] * cfg.eval_tasks + [neutral(cfg, p)] * cfg.eval_tasks)
            acc = test_accuracy(cfg, venv, rows, eval_seeds)
            gains.append(acc[: cfg.eval_tasks] - acc[cfg.eval_tasks:])
        return float(np.mean(np.concatenate(gains)))

    while gen < cfg.generations and (time.time() - start) / 60 < cfg.budget_minutes:
        if gen % cfg.eval_every == 0:
            gain = evaluate(theta)
            history.append({"generation": gen, "eval_gain_vs_neutral": gain, "minutes": (time.time() - start) / 60})
            log(f"gen {gen:4d}  eval tasks: {gain:+.2f} points vs leaving sampling alone  "
                f"({(time.time() - start) / 60:.1f} min)")
            if gain > best["gain"]:
                best = {"gain": gain, "theta": theta.copy(), "generation": gen}
        m = cfg.modalities[gen % len(cfg.modalities)]
        eps = rng.standard_normal((cfg.pairs, p)).astype(np.float32)
        cands = np.concatenate([theta + cfg.sigma * eps, theta - cfg.sigma * eps])
        seeds = [int(rng.integers(0, 2**31 - 1)) for _ in range(n_tasks)]  # the generation's tasks, every candidate
        acc = test_accuracy(cfg, train_envs[m], np.repeat(cands, n_tasks, axis=0), seeds * n_cand)
        acc = acc.reshape(n_cand, n_tasks)
        fitness = centred_ranks((acc - acc.mean(0)).mean(1))
        grad = (fitness[: cfg.pairs] - fitness[cfg.pairs:]) @ eps / (cfg.pairs * cfg.sigma)
        theta = theta + cfg.lr * grad.astype(np.float32)
        gen += 1
    gain = evaluate(theta)
    history.append({"generation": gen, "eval_gain_vs_neutral": gain, "minutes": (time.time() - start) / 60})
    log(f"gen {gen:4d}  eval tasks: {gain:+.2f} points vs leaving sampling alone (final)")
    if gain > best["gain"]:
        best = {"gain": gain, "theta": theta.copy(), "generation": gen}
    if best["gain"] < 0:  # never ship a policy that loses to doing nothing on the family's eval tasks
        best = {"gain": 0.0, "theta": neutral(cfg, p), "generation": None}
    return {"theta": best["theta"], "best_generation": best["generation"], "best_eval_gain": best["gain"],
            "generations": gen, "minutes": (time.time() - start) / 60, "history": history}


def rule_gains(cfg: PretrainConfig, rules: np.ndarray, tasks: str, n_tasks: int, seeds: list[int],
               log: Any = print) -> tuple[np.ndarray, np.ndarray]:
    """(R, T·len(modalities)) paired gains in test accuracy (points) of each rule over leaving
    sampling alone, every rule on the same tasks (the task seeds ``seeds``, for every M), and
    (T·len(modalities),) the test accuracy of leaving sampling alone on each task."""
    rows = np.vstack([np.zeros((1, len(RULE_PARAMS)), np.float32), rules])  # row 0: leave sampling alone
    per_chunk = max(1, cfg.max_runs // n_tasks)
    out, base = [], []
    for m in cfg.modalities:
        venv = make_env(cfg, m, tasks, per_chunk * n_tasks)
        acc = np.empty((len(rows), n_tasks))
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start:start + per_chunk]
            padded = np.vstack([chunk, np.zeros((per_chunk - len(chunk), len(RULE_PARAMS)), np.float32)])
            res = test_accuracy(cfg, venv, np.repeat(padded, n_tasks, axis=0), seeds * per_chunk)
            acc[start:start + len(chunk)] = res.reshape(per_chunk, n_tasks)[: len(chunk)]
            log(f"  M={m} {tasks} tasks: rules {start}-{start + len(chunk) - 1} of {len(rows)} played")
        venv.close()
        out.append(acc[1:] - acc[0])
        base.append(acc[0])
    return np.concatenate(out, axis=1), np.concatenate(base)


def floor_lower_end(gains: np.ndarray, base: np.ndarray, ceiling: float) -> np.ndarray:
    """(R,) lower end of the normal 95 % interval of each rule's mean gain over the near-ceiling
    tasks (``base`` >= ``ceiling``); +inf where there are fewer than 2 such tasks (no evidence either way)."""
    near = gains[:, base >= ceiling]
    if near.shape[1] < 2:
        return np.full(len(gains), np.inf)
    return near.mean(1) - Z95 * near.std(1, ddof=1) / np.sqrt(near.shape[1])


def search_rule(cfg: PretrainConfig, log: Any = print) -> dict[str, Any]:
    """Grid search of the ``gated-boost`` rule on training tasks, confirmation on evaluation tasks."""
    torch.set_num_threads(cfg.threads)
    start = time.time()
    check_grid(cfg.grid)
    grid = np.array(list(itertools.product(*(cfg.grid[n] for n in RULE_PARAMS))), np.float32)
    rng = np.random.default_rng(cfg.seed)
    seeds = [int(x) for x in rng.integers(0, 2**31 - 1, cfg.tasks)]
    log(f"{len(grid)} rules x {cfg.tasks} training tasks x M in {cfg.modalities}")
    gains, base = rule_gains(cfg, grid, "train", cfg.tasks, seeds, log)
    mean = gains.mean(1)
    floor = floor_lower_end(gains, base, cfg.floor_ceiling)
    order = np.argsort(-mean)
    if cfg.objective == "floor":  # the feasible rules first (by mean gain), then the others
        order = np.array(sorted(order, key=lambda i: (floor[i] < cfg.floor_margin, -mean[i])))
    near = int((base >= cfg.floor_ceiling).sum())
    table = [{**{n: round(float(v), 4) for n, v in zip(RULE_PARAMS, grid[i], strict=True)},
              "train_gain": round(float(mean[i]), 3), "train_loses_1pt": round(float((gains[i] < -1).mean()), 3),
              "near_ceiling_lower_end": round(float(floor[i]), 3)}
             for i in order]
    log(f"{near} of {base.size} training tasks near the ceiling (leaving sampling alone >= {cfg.floor_ceiling} %)")
    for row in table[:8]:
        log(f"  {row}")
    best = grid[order[0]]
    if cfg.objective == "floor" and floor[order[0]] < cfg.floor_margin:
        log("no rule keeps the floor on the near-ceiling training tasks: leave sampling alone")
        best = np.zeros(len(RULE_PARAMS), np.float32)
    eval_seeds = list(range(cfg.eval_tasks))
    eval_gain, eval_base = rule_gains(cfg, best[None], "eval", cfg.eval_tasks, eval_seeds, log)
    eval_floor = float(floor_lower_end(eval_gain, eval_base, cfg.floor_ceiling)[0])
    eval_gain = eval_gain[0]
    log(f"chosen on training tasks {dict(zip(RULE_PARAMS, best.tolist(), strict=True))}: "
        f"{eval_gain.mean():+.2f} on {eval_gain.size} evaluation tasks, near-ceiling lower end {eval_floor:+.2f} "
        f"({(time.time() - start) / 60:.1f} min)")
    keeps = eval_gain.mean() > 0 and (cfg.objective == "mean" or eval_floor >= cfg.floor_margin)
    shipped = best if keeps else np.zeros(len(RULE_PARAMS), np.float32)  # else: leave sampling alone
    return {"theta": shipped, "best_eval_gain": float(eval_gain.mean()) if keeps else 0.0,
            "eval_gain_of_best": float(eval_gain.mean()), "eval_loses_1pt": float((eval_gain < -1).mean()),
            "eval_near_ceiling_lower_end": eval_floor, "objective": cfg.objective,
            "train_table": table, "minutes": (time.time() - start) / 60, "generations": None,
            "best_generation": None, "history": []}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="YAML: configs/pretrain_dus.yaml or pretrain_bss.yaml")
    parser.add_argument("--out", help="folder for <stem>.pt/.json (default: the config's out, agents/weights)")
    parser.add_argument("--budget-minutes", type=float, help="override the config's wall-time budget")
    args = parser.parse_args(argv)
    try:
        raw = read_yaml(Path(args.config))
        if not isinstance(raw, dict):
            raise ValueError(f"{args.config} must map settings to values, got a {type(raw).__name__}")
        cfg = PretrainConfig.from_mapping(raw, args.config)
    except (OSError, ValueError, TypeError) as err:
        parser.error(str(err))
    if args.budget_minutes is not None:
        cfg = dataclasses.replace(cfg, budget_minutes=args.budget_minutes)
    log = lambda s: print(s, flush=True)  # noqa: E731
    result = search_rule(cfg, log) if cfg.policy == "gated-boost" else pretrain(cfg, log)
    stem = cfg.stem or f"{cfg.method.lower()}_pretrained"
    recorded = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "out"}
    if cfg.policy == "gated-boost":
        spec = {"method": "DUS", "arch": "gated-boost", "obs_norm": "chance",
                "trained_on": "SyntheticMix (tasks='train'), confirmed on tasks='eval'",
                "config": recorded, "minutes": round(result["minutes"], 1),
                "rule": {n: round(float(v), 4) for n, v in zip(RULE_PARAMS, result["theta"], strict=True)},
                "eval_gain_vs_neutral": round(result["eval_gain_of_best"], 3),
                "eval_loses_1pt": round(result["eval_loses_1pt"], 3), "objective": result["objective"],
                "eval_near_ceiling_lower_end": round(result["eval_near_ceiling_lower_end"], 3),
                "train_table": result["train_table"]}
        save_weights(stem, args.out or cfg.out, result["theta"], spec)
        verdict = ("it ships" if np.any(result["theta"]) else
                   "it did not pass there, so the file holds 'leave sampling alone' (kappa 0)")
        print(f"wrote {Path(args.out or cfg.out) / stem}.pt/.json: the chosen rule scored "
              f"{result['eval_gain_of_best']:+.2f} points vs leaving sampling alone on the family's eval tasks "
              f"(near-ceiling lower end {result['eval_near_ceiling_lower_end']:+.2f}); {verdict}")
        return
    spec = {"method": cfg.method, "hidden": cfg.hidden, "obs_norm": "chance",
            "trained_on": "SyntheticMix (tasks='train'), selected on tasks='eval'",
            "config": recorded, "generations_run": result["generations"],
            "minutes": round(result["minutes"], 1), "best_generation": result["best_generation"],
            "best_eval_gain_vs_neutral": round(result["best_eval_gain"], 3), "history": result["history"]}
    save_weights(stem, args.out or cfg.out, result["theta"], spec)
    print(f"wrote {Path(args.out or cfg.out) / stem}.pt/.json (best generation {result['best_generation']}, "
          f"{result['best_eval_gain']:+.2f} points vs leaving sampling alone on the family's eval tasks)")


if __name__ == "__main__":
    main()
