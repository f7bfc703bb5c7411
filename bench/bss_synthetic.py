"""BSS on Synthetic: full-data joint training vs BSS-H, BSS-L and a PPO agent; measurement cost.

    python bench/bss_synthetic.py            # results: BENCHMARKS.md

Each policy runs one episode (= one inner training run) per evaluation seed on the same
data; the table gives mean ± std test accuracy (fused and per modality). PPO trains once,
on its own reset seeds, then is evaluated deterministically on the same seeds as the
heuristics. The cost line is the wall time of one balance-measuring pass over the training
set divided by that of one full training epoch, both measured in this run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO

from mmrl_agents.heuristics import HEURISTICS
from mmrl_env.envs.bss import BSSEnv
from mmrl_training.rollout import run_episode


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--t-grow", type=float, default=None,
                   help="BSS-H root pacing T_grow (default: the policy's, min(40, epochs/2))")
    p.add_argument("--ppo-steps", type=int, default=1600, help="PPO training length in env steps (= epochs)")
    p.add_argument("--out", default=None, help="write the markdown results here")
    return p.parse_args()


def policy_runs(args: argparse.Namespace, seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Episodes per policy; each heuristic gets the env configuration its paper method uses."""
    base = {"epochs": args.epochs, "device": "cpu"}
    setups = {
        "full (joint)": ("full", {}),
        "BSS-H (root, rank once)": ("bss-h", {"remeasure_every": None, "params": {"t_grow": args.t_grow}}),
        "BSS-L (learned, E=5)": ("bss-l", {"remeasure_every": 5}),
    }
    runs = {}
    for label, (algo, cfg) in setups.items():
        params = cfg.pop("params", {})
        env = BSSEnv(**{**base, **HEURISTICS[algo].env_kwargs, **cfg})
        policy = HEURISTICS[algo](env, **params)
        runs[label] = [run_episode(policy, env, seed=s) for s in seeds]
    env = BSSEnv(**base)
    agent = PPO("MlpPolicy", env, n_steps=10 * args.epochs, batch_size=args.epochs * 5, seed=0, device="cpu", verbose=0)
    start = time.perf_counter()
    env.reset(seed=10_000)  # training episodes use seeds disjoint from the evaluation seeds
    agent.learn(total_timesteps=args.ppo_steps)
    ppo_label = f"PPO ({args.ppo_steps} steps, {time.perf_counter() - start:.0f} s)"
    runs[ppo_label] = [run_episode(agent, env, seed=s) for s in seeds]
    return runs


def measurement_cost(epochs: int, repeats: int = 5) -> tuple[float, float]:
    """Median wall time of one measuring pass and of one full training epoch (seconds)."""
    env = BSSEnv(epochs=epochs, device="cpu")
    env.reset(seed=0)
    trainer, n = env.inner_run, len(env.inner_run.dataset.train)  # the env's one-run trainer
    order = torch.Generator().manual_seed(0)
    measure, train = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        env.measurer.measure_runs(trainer)
        t1 = time.perf_counter()
        trainer.train_epoch([torch.randperm(n, generator=order)])
        train.append(time.perf_counter() - t1)
        measure.append(t1 - t0)
    return float(np.median(measure)), float(np.median(train))


def table(runs: dict[str, list[dict[str, Any]]], modalities: tuple[str, ...]) -> str:
    cols = ["fused_acc", *(f"{m}_acc" for m in modalities)]
    lines = ["| policy | " + " | ".join(f"test {c.replace('_', ' ')} (%)" for c in cols) + " | return | mean λ |",
             "|---" * (len(cols) + 3) + "|"]
    for label, episodes in runs.items():
        cells = []
        for c in cols:
            v = 100 * np.array([ep["final"]["test"][c] for ep in episodes])
            cells.append(f"{v.mean():.2f} ± {v.std():.2f}")
        ret = np.array([ep["return"] for ep in episodes])
        mean_lambda = np.mean([[info["lambda"] for info in ep["infos"][1:]] for ep in episodes])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ret.mean():.1f} | {mean_lambda:.2f} |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    runs = policy_runs(args, seeds)
    t_measure, t_epoch = measurement_cost(args.epochs)
    modalities = BSSEnv(device="cpu").modalities
    report = "\n".join([
        "# BSS on Synthetic",
        "",
        f"Command: `{shlex.join(['python', *sys.argv])}` (torch threads: 1, CPU)",
        "",
        f"Synthetic defaults (n_train 2000, n_val 500, n_test 1000, data seed 0); {args.epochs} epochs per episode;"
        f" evaluation seeds {seeds}; mean ± std over seeds.",
        "",
        table(runs, modalities),
        "",
        f"Measurement cost: one measuring pass {1e3 * t_measure:.1f} ms vs one training epoch "
        f"{1e3 * t_epoch:.1f} ms → ratio {t_measure / t_epoch:.3f} (medians of 5).",
        "",
        f"Total wall time: {time.perf_counter() - start:.0f} s.",
    ])
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")


if __name__ == "__main__":
    main()
