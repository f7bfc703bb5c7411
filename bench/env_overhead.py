"""Overhead of the environment over a plain training loop, as a ratio measured in one run.

Both sides run the same inner training (DUS-Synthetic defaults: 8 epochs × 32 iterations,
B = 64, n_j = B): the plain loop drives the env's own inner trainer (``InnerRun`` with one
run) directly — ``train`` one epoch at a time plus one validation pass per epoch and a final test
evaluation (what an ordinary training script does); the env side is a whole episode through
``env.step`` (monitor updates every iteration, a validation pass every step, observation,
info, and the final test evaluation). Runs alternate (plain, env, plain, env, ...) and the
medians are compared, so background load hits both sides alike. Wall time and process CPU
time are both reported; on a shared machine the CPU-time ratio is the steadier one.

    python bench/env_overhead.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import mmrl_env  # noqa: F401


def plain_loop(env: gym.Env, seed: int) -> tuple[float, float]:
    u = env.unwrapped
    tr = u.inner_run  # the env's K = 1 trainer
    t0, c0 = time.perf_counter(), time.process_time()
    tr.reset([seed])
    sizes = [[tr.cfg.batch_size] * tr.dataset.num_modalities]
    val_idx = u.runs.reward.idx  # the env's fixed validation subset
    while not tr.done.all():
        tr.train(tr.iterations_per_epoch, sizes)
        tr.predict(tr.dataset.val, val_idx)
    u.evaluate("test")
    return time.perf_counter() - t0, time.process_time() - c0


def env_episode(env: gym.Env, seed: int) -> tuple[float, float]:
    action = np.zeros(env.action_space.shape, np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    done = False
    while not done:
        _, _, done, _, _ = env.step(action)
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    env = gym.make("DUS-Synthetic", device=args.device)
    env_episode(env, 0), plain_loop(env, 0)  # warm-up
    plain, stepped = [], []
    for i in range(args.repeats):
        plain.append(plain_loop(env, i))
        stepped.append(env_episode(env, i))
    iters = env.unwrapped.inner_run.total_iterations
    print(f"device={args.device} threads={args.threads} repeats={args.repeats} iterations/episode={iters}")
    for k, clock in enumerate(("wall", "cpu")):
        mp = statistics.median(t[k] for t in plain)
        me = statistics.median(t[k] for t in stepped)
        print(f"{clock:4s}: plain loop median {mp:.3f}s   env.step median {me:.3f}s   ratio env/plain = {me / mp:.3f}")


if __name__ == "__main__":
    main()
