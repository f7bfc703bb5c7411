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
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from mmrl_agents.heuristics.pretrained import FEATURES, act, features, num_params, save_weights, unflatten
from mmrl_training.config import read_yaml
from mmrl_training.rollout import run_episodes

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_env.envs.control import control_of


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run: the keys of a ``configs/pretrain_*.yaml`` (recorded, but ``out``, in the
    weights' JSON). Each generation scores ``2 x pairs`` candidates on ``tasks`` tasks; every
    ``eval_every`` generations the mean policy meets plain joint training on ``eval_tasks`` held-out tasks."""

    method: str = "DUS"  # DUS or BSS
    modalities: list[int] = field(default_factory=lambda: [2, 3])  # the generations alternate between these M
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

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], where: str) -> PretrainConfig:
        """The config of a YAML mapping; an unknown key or method is a ``ValueError`` naming it."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(raw) - set(names)
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}; valid: {', '.join(names)}")
        cfg = cls(**raw)
        if cfg.method not in ("DUS", "BSS"):
            raise ValueError(f"method must be DUS or BSS, got {cfg.method!r}")
        return cfg


class _Batch:
    """K policies, one per run (row k of ``theta``), behind the ``predict`` call run_episodes uses."""

    def __init__(self, method: str, theta: np.ndarray, hidden: int, control: Any) -> None:
        self.method, self.control = method, control
        self.theta = unflatten(theta, len(FEATURES), hidden)

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return act(self.method, self.theta, features(np.asarray(obs, np.float32), self.control)), None


def make_env(cfg: PretrainConfig, m: int, tasks: str, k: int) -> Any:
    kwargs = {**cfg.env_kwargs, "obs_norm": "chance", "autoreset_mode": "Disabled", "device": "cpu"}
    if cfg.method == "BSS":
        kwargs.setdefault("curriculum", "rank")
    kwargs["dataset_kwargs"] = {**kwargs.get("dataset_kwargs", {}), "modalities": m, "tasks": tasks}
    return gym.make_vec(f"{cfg.method}-SyntheticMix", num_envs=k, vectorization_mode="vector_entry_point",
                        **kwargs)


def test_accuracy(cfg: PretrainConfig, venv: Any, theta: np.ndarray, seeds: list[int]) -> np.ndarray:
    """(K,) final test fused accuracy (points) of policy row k on run k's task (seed k); a diverged run scores 0."""
    policy = _Batch(cfg.method, theta, cfg.hidden, control_of(venv))
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
    torch.set_num_threads(int(cfg.threads))
    rng = np.random.default_rng(cfg.seed)
    p = num_params(len(FEATURES), cfg.hidden)
    theta = 0.5 * rng.standard_normal(p).astype(np.float32)  # random hidden features ...
    theta[-cfg.hidden - 1:] = 0.0  # ... and a zero output layer: starts as "leave sampling alone"
    n_cand, n_tasks, n_eval, pairs = 2 * cfg.pairs, cfg.tasks, cfg.eval_tasks, cfg.pairs
    train_envs = {m: make_env(cfg, m, "train", n_cand * n_tasks) for m in cfg.modalities}
    eval_envs = {m: make_env(cfg, m, "eval", 2 * n_eval) for m in cfg.modalities}
    eval_seeds = list(range(n_eval)) * 2
    start, history, best = time.time(), [], {"gain": -np.inf}
    gen = 0

    def evaluate(theta: np.ndarray) -> float:
        gains = []
        for venv in eval_envs.values():  # the policy on rows 0..E-1, plain joint training on E..2E-1: same tasks
            rows = np.stack([theta] * n_eval + [neutral(cfg, p)] * n_eval)
            acc = test_accuracy(cfg, venv, rows, eval_seeds)
            gains.append(acc[:n_eval] - acc[n_eval:])
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
        eps = rng.standard_normal((pairs, p)).astype(np.float32)
        cands = np.concatenate([theta + cfg.sigma * eps, theta - cfg.sigma * eps])
        seeds = [int(rng.integers(0, 2**31 - 1)) for _ in range(n_tasks)]  # the generation's tasks, every candidate
        acc = test_accuracy(cfg, train_envs[m], np.repeat(cands, n_tasks, axis=0), seeds * n_cand)
        acc = acc.reshape(n_cand, n_tasks)
        fitness = centred_ranks((acc - acc.mean(0)).mean(1))
        grad = (fitness[:pairs] - fitness[pairs:]) @ eps / (pairs * cfg.sigma)
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
    result = pretrain(cfg, log=lambda s: print(s, flush=True))
    stem = cfg.stem or f"{cfg.method.lower()}_pretrained"
    spec = {"method": cfg.method, "hidden": cfg.hidden, "obs_norm": "chance",
            "trained_on": "SyntheticMix (tasks='train'), selected on tasks='eval'",
            "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "out"},
            "generations_run": result["generations"],
            "minutes": round(result["minutes"], 1), "best_generation": result["best_generation"],
            "best_eval_gain_vs_neutral": round(result["best_eval_gain"], 3), "history": result["history"]}
    save_weights(stem, args.out or cfg.out, result["theta"], spec)
    print(f"wrote {Path(args.out or cfg.out) / stem}.pt/.json (best generation {result['best_generation']}, "
          f"{result['best_eval_gain']:+.2f} points vs leaving sampling alone on the family's eval tasks)")


if __name__ == "__main__":
    main()
