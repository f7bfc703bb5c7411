"""Modality imbalance on Synthetic and what DUS recovers, over seeds.

For each seed: each modality trained alone (its unimodal head, same encoder, same epochs
and optimiser), then whole DUS-Synthetic episodes under the uniform policy (= plain joint
training), DUS-H, random actions and, if given, a trained agent. Reports test accuracy
(fused and per modality) as mean ± std, Markdown to stdout.

    python bench/dus_synthetic.py --seeds 5 --agent runs/ppo/DUS-Synthetic_1/model.zip
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mmrl_agents.factory import LEARNED, make_agent
from mmrl_env.envs.control import control_of  # noqa: F401
from mmrl_env.inner_run import InnerRun
from mmrl_env.metrics import accuracy
from mmrl_training.rollout import run_episode


def alone_accuracy(env: gym.Env, modality: int, seed: int) -> float:
    """Test accuracy of one modality trained by itself (α = 1, other modalities get no samples): a
    one-run trainer with the env's data and settings."""
    env_trainer = env.unwrapped.inner_run
    cfg = replace(env_trainer.cfg, learner_kwargs={**env_trainer.cfg.learner_kwargs, "alpha": 1.0})
    tr = InnerRun(env_trainer.dataset, cfg, 1, env_trainer.device, vectorize=env_trainer.vectorize)
    tr.reset([seed])
    sizes = [[tr.cfg.batch_size if j == modality else 0 for j in range(tr.dataset.num_modalities)]]
    tr.train(tr.total_iterations, sizes)
    pred, y = tr.predict(tr.dataset.test)
    return accuracy(pred.unimodal[modality][0], y)


def load_agent(path: str) -> Any:
    algo = next((a for a in LEARNED if f"/{a}/" in path), "ppo")
    return LEARNED[algo].load(path, device="cpu")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--agent", default=None, help="a saved SB3 agent (model.zip) to evaluate too")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    env = gym.make("DUS-Synthetic", device="cpu")
    mods = control_of(env).modalities
    seeds = [10_000 + i for i in range(args.seeds)]  # the CLI's evaluation seeds for --seed 0
    rows: dict[str, dict[str, list[float]]] = {}
    for j, name in enumerate(mods):
        rows[f"{name} alone"] = {f"{name}": [alone_accuracy(env, j, s) for s in seeds]}
    policies = {n: make_agent(n, env, seed=0) for n in ("uniform", "dus-h", "random")}
    if args.agent:
        policies["agent"] = load_agent(args.agent)
    for name, policy in policies.items():
        tests = [run_episode(policy, env, seed=s)["final"]["test"] for s in seeds]
        rows[name] = {"fused": [t["fused_acc"] for t in tests], **{m: [t[f"{m}_acc"] for t in tests] for m in mods}}
    cols = ["fused", *mods]
    print(f"| run ({len(seeds)} seeds) | " + " | ".join(f"test acc {c} (%)" for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, row in rows.items():
        cells = [f"{100 * np.mean(row[c]):.1f} ± {100 * np.std(row[c]):.1f}" if c in row else "" for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
