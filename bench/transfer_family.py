"""Diagnose DUS rules on the SyntheticMix family's *training* tasks (issue 26): which tasks gain
from boosting the weak modality, and which early observations predict it.

    python bench/transfer_family.py --tasks 96 --out runs/bench/family_diag.json
    python bench/transfer_family.py --split eval --first-seed 1000 --tasks 512 --rules uniform,dus-h \
        --pretrained agents/weights,runs/old_weights     # shipped policies on fresh family eval tasks

Every rule plays the same tasks and seeds (common random numbers); per task it records the
drawn generative parameters (``run_info``), each rule's final test accuracies and the
chance-normalised observations at every decision. Never run on a benchmark dataset or seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mmrl_env  # noqa: E402,F401
from mmrl_agents.heuristics.pretrained import rule_act  # noqa: E402
from mmrl_env.envs.control import control_of  # noqa: E402
from mmrl_training.rollout import run_episodes  # noqa: E402


class Recorder:
    """A batched rule ``fn(obs, control) -> actions`` that keeps every observation it is shown."""

    def __init__(self, fn, control) -> None:
        self.fn, self.control, self.obs = fn, control, []

    def predict(self, obs, deterministic=True):
        obs = np.asarray(obs, np.float32)
        self.obs.append(obs.copy())
        return self.fn(obs, self.control), None


def dush(obs, control, kappa=20.0, tau=0.02, until=1.0):
    """DUS-H with its own κ and τ until progress ``until``: the gated-boost rule (κ, τ, until, no gate, share 0)."""
    return rule_act(np.tile(np.array([kappa, tau, until, -1.0, 0.0], np.float32), (obs.shape[0], 1)), obs, control)


RULES = {
    "uniform": lambda o, c: np.zeros((o.shape[0], c.action_map.num_modalities), np.float32),
    "dus-h": dush,
    "dus-h-k5": lambda o, c: dush(o, c, kappa=5.0),
    "dus-h-half": lambda o, c: dush(o, c, until=0.5),
}


def pretrained_rule(folder: str):
    """The ``dus_pretrained`` weights in ``folder`` (either architecture) as a batched rule."""
    from mmrl_agents.heuristics.pretrained import FEATURES, act, features, load_weights, unflatten

    spec, theta = load_weights("dus_pretrained", folder)
    if spec.get("arch") == "gated-boost":
        return lambda o, c: rule_act(np.repeat(theta[None], o.shape[0], 0), o, c)
    net = unflatten(theta[None], len(FEATURES), spec["hidden"])
    return lambda o, c: act("DUS", {k: np.repeat(v, o.shape[0], 0) for k, v in net.items()}, features(o, c))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=96)
    ap.add_argument("--split", default="train", choices=["train", "eval"])
    ap.add_argument("--modalities", default="2,3")
    ap.add_argument("--rules", default=",".join(RULES))
    ap.add_argument("--first-seed", type=int, default=500000)
    ap.add_argument("--pretrained", default="", help="comma-separated folders of dus_pretrained weights to add")
    ap.add_argument("--obs-extras", default="", help="comma-separated observation extras to record (e.g. val_acc)")
    ap.add_argument("--ceiling", type=float, default=95.0, help="near-ceiling tasks: uniform ends at >= this (%%)")
    ap.add_argument("--out", default="runs/bench/family_diag.json")
    args = ap.parse_args()
    names = args.rules.split(",")
    for folder in filter(None, args.pretrained.split(",")):
        RULES[f"pretrained:{folder}"] = pretrained_rule(folder)
        names.append(f"pretrained:{folder}")
    torch.set_num_threads(1)
    seeds = list(range(args.first_seed, args.first_seed + args.tasks))
    result = {}
    for m in [int(x) for x in args.modalities.split(",")]:
        venv = gym.make_vec("DUS-SyntheticMix", num_envs=args.tasks, vectorization_mode="vector_entry_point",
                            obs_norm="chance", autoreset_mode="Disabled", device="cpu",
                            obs_extras=tuple(filter(None, args.obs_extras.split(","))),
                            dataset_kwargs={"modalities": m, "tasks": args.split, "n_train": 1024, "n_val": 512,
                                            "n_test": 1024})
        control = control_of(venv)
        rec = {"seeds": seeds, "rules": {}}
        for name in names:
            t = time.time()
            pol = Recorder(RULES[name], control)
            eps = run_episodes(pol, venv, seeds)
            rec["info"] = [dict(i) for i in venv.unwrapped.inner_run.dataset.run_info] if hasattr(venv, "unwrapped") \
                else [dict(i) for i in venv.inner_run.dataset.run_info]
            rec["rules"][name] = {"test": [ep["final"]["test"] for ep in eps],
                                  "n": [[i.get("n") for i in ep["infos"][1:3]] for ep in eps],
                                  "obs": np.stack(pol.obs, 1).round(4).tolist()}
            acc = np.array([ep["final"]["test"]["fused_acc"] for ep in eps]) * 100
            print(f"M={m} {name:12s} mean test {acc.mean():.2f}  ({time.time() - t:.0f}s)", flush=True)
        if "uniform" in rec["rules"]:
            summarize(f"M={m}", rec, args.split, args.ceiling)
        result[m] = rec
    if len(result) > 1 and all("uniform" in rec["rules"] for rec in result.values()):
        pooled = {"rules": {name: {"test": [t for rec in result.values() for t in rec["rules"][name]["test"]]}
                            for name in names}}
        summarize("all M", pooled, args.split, args.ceiling)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result))


def summarize(label: str, rec: dict, split: str, ceiling: float) -> None:
    """Each rule's paired gain over uniform (normal 95 % interval over tasks), on every task and on
    the near-ceiling ones (uniform ends at >= ``ceiling`` %: where the issue's floor applies)."""
    base = np.array([t["fused_acc"] for t in rec["rules"]["uniform"]["test"]]) * 100
    near = base >= ceiling

    def interval(g: np.ndarray) -> str:
        if g.size < 2:
            return f"no interval ({g.size} task{'s' if g.size != 1 else ''})"
        half = 1.96 * g.std(ddof=1) / np.sqrt(g.size)
        return f"{g.mean():+.2f} [{g.mean() - half:+.2f}, {g.mean() + half:+.2f}]"

    for name, r in rec["rules"].items():
        g = np.array([t["fused_acc"] for t in r["test"]]) * 100 - base
        print(f"{label} {name}: {interval(g)} vs uniform ({split} tasks; {(g < -1).mean():.0%} of tasks lose > 1 "
              f"point); near the ceiling ({near.sum()} tasks, uniform >= {ceiling:g} %): {interval(g[near])}",
              flush=True)


if __name__ == "__main__":
    main()
