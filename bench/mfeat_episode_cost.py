"""What one DUS-MFeat episode costs next to one DUS-Synthetic episode (the budget of anything
that plays many inner runs, e.g. an agent trained on MFeat), as ratios measured in one run.

Each case plays whole episodes (env defaults: 8 epochs, B = 64, neutral actions, CPU, one torch
thread) from a fresh reset; the cases alternate round by round (``timing.alternate``) and the
medians are compared, so background load hits every case alike.

    python bench/mfeat_episode_cost.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from timing import alternate

import mmrl_env  # noqa: F401

CASES = {
    "DUS-Synthetic": ("DUS-Synthetic", {}),
    "DUS-MFeat (pix+zer)": ("DUS-MFeat", {}),
    "DUS-MFeat (pix+fou+mor)": ("DUS-MFeat", {"dataset_kwargs": {"views": ["pix", "fou", "mor"]}}),
    "DUS-MFeat (all six)": ("DUS-MFeat", {"dataset_kwargs": {"views": ["fac", "fou", "kar", "mor", "pix", "zer"]}}),
}


def episode_timer(env_id: str, kwargs: dict) -> Callable[[], float]:
    env = gym.make(env_id, device="cpu", **kwargs)
    neutral = np.zeros(env.action_space.shape, np.float32)

    def measure() -> float:
        env.reset(seed=0)
        start, done = time.perf_counter(), False
        while not done:
            *_, terminated, truncated, _ = env.step(neutral)
            done = terminated or truncated
        return time.perf_counter() - start

    measure()  # warm-up
    return measure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    samples = alternate({name: episode_timer(*case) for name, case in CASES.items()}, args.repeats)
    base = statistics.median(samples["DUS-Synthetic"])
    print("| env | median episode [s] | / DUS-Synthetic |\n|---|---:|---:|")
    for name, xs in samples.items():
        print(f"| {name} | {statistics.median(xs):.2f} | {statistics.median(xs) / base:.2f} |")


if __name__ == "__main__":
    main()
