"""Env steps per second of inner runs in Ray actors vs the in-process vector env.

    python bench/ray_throughput.py                         # CPU, K = 8 runs, 1 and 2 actors
    python bench/ray_throughput.py --device cuda --runs 64 # actors on the GPU(s)

The same K runs of ``--env-id`` are stepped three ways: one in-process
``gym.make_vec(..., vectorization_mode="vector_entry_point")`` env, a ``RayVectorEnv`` with
1 actor hosting all K runs, and one with 2 actors of K/2 runs each. All stay open for the
alternating rounds, so each actor reserves an equal share of the cluster's CPUs (on CUDA a
GPU each, or a share when there are fewer GPUs than actors) and runs ``--threads`` torch
threads. Each env is reset once, warmed up one step, then ``--steps`` steps are timed per
round (all within one episode: no reset); ``--repeats`` rounds alternate between the three
so that a load change on a shared machine hits all, and each side's fastest round counts.
Throughput is run-steps per second (K x steps / time); the ratios over the in-process env
are measured in this one run. A local cluster of ``--cpus`` CPUs is started (``ray.init``).
Results: BENCHMARKS.md ("Inner runs in Ray actors").
"""

from __future__ import annotations

import argparse
import shlex
import sys

import gymnasium as gym
import torch
from timing import alternate, env_step_timer

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_env.envs.ray_vector import RayVectorEnv, init_ray


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env-id", default="DUS-Synthetic")
    p.add_argument("--runs", type=int, default=8, help="K inner runs in total (split over the actors)")
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2], help="actor counts to time")
    p.add_argument("--steps", type=int, default=4, help="timed env steps per round")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds; each side's fastest counts")
    p.add_argument("--device", default="cpu", help="the env's device: cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the driver's env and of each actor")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray cluster (default: all)")
    p.add_argument("--epochs", type=int, default=16, help="inner epochs (an episode must outlast the timed steps)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    ray = init_ray(num_cpus=args.cpus)
    # every env stays open for the alternating rounds: the actors share the cluster's CPUs
    share = ray.cluster_resources()["CPU"] / sum(args.actors)
    kwargs = {"device": args.device, "epochs": args.epochs}
    envs: dict[str, gym.vector.VectorEnv] = {
        "in-process": gym.make_vec(args.env_id, num_envs=args.runs, vectorization_mode="vector_entry_point",
                                   **kwargs)}
    for n in args.actors:
        envs[f"{n} actor{'s' * (n > 1)}"] = RayVectorEnv(args.env_id, args.runs, n, kwargs, num_cpus=share,
                                                            threads=args.threads)
    # the episode must not end while timing: 1 warm-up + repeats x steps decisions
    timers = {name: env_step_timer(env, args.steps, seed=0) for name, env in envs.items()}
    best = {name: min(times) for name, times in alternate(timers, args.repeats).items()}  # fastest rounds
    print(f"`python {shlex.join(sys.argv)}`\n")
    print(f"{args.env_id}, K = {args.runs} runs, device {args.device}, {args.threads} torch thread(s) per process, "
          f"{args.steps} steps x {args.repeats} rounds (fastest round)\n")
    print("| env | runs per actor | env steps/s (run-steps) | vs in-process |")
    print("|---|---|---|---|")
    base = args.runs / best["in-process"]
    for name, env in envs.items():
        rate = args.runs / best[name]
        layout = "–" if name == "in-process" else " + ".join(map(str, env.runs_per_actor))
        print(f"| {name} | {layout} | {rate:.1f} | **{rate / base:.2f}×** |")
    for env in envs.values():
        env.close()


if __name__ == "__main__":
    main()
