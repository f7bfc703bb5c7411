"""Inner iterations per second: the vectorized engine (K runs at once) vs K separate runs of one.

    python bench/vector_throughput.py                       # CPU, Synthetic features + raw
    python bench/vector_throughput.py --device cuda         # the same on a GPU
    python bench/vector_throughput.py --env --ks 1 4 16 64  # env steps: make_vec vs single envs

For each K, a few separate runs (each a ``InnerRun`` with ``num_runs=1``) and one K-run
``InnerRun`` are timed in ``--repeats`` alternating rounds (so a load change on a shared
machine hits both), each side's fastest round counts, and the speed-up is (K · iterations /
engine time) / (iterations / single-run time): the throughput of one batched engine over that of
K runs one after the other. Both sides are the same trainer and learner code; they differ in how
a step is mapped over the runs. The K-run side is batched (``vectorize=True``: the MLP kernel on
features, ``vmap`` on the small CNN). Each separate run takes what ``engine="auto"`` picks for one
run on that device (``mmrl_env.inner_run.build.vectorized``), i.e. what ``gym.make`` trains with:
the MLP kernel for features; for the small CNN on a CPU the unbatched per-run step (plain
``grad``, no ``vmap``), on CUDA ``vmap`` at K = 1. So the baseline is a single env's own inner
run, not a weakened one. With ``--sizes dus`` every run gets its own DUS sizes n_kj (Σ_j n_kj =
M·B, as DUS's fixed budget), so the masks and padding are exercised. Results: BENCHMARKS.md
("Vectorized engine").

``--env`` times whole environment steps instead (each one ½ epoch of inner iterations under
the action's DUS sizes, the CMD hook every iteration, the validation prediction for the
reward and the observation): ``gym.make_vec("DUS-Synthetic", num_envs=K,
vectorization_mode="vector_entry_point")`` against single ``gym.make("DUS-Synthetic")`` envs
stepped in turn (``--single-runs`` of them, timed right before; K single envs in turn take K
times one env's time). Random actions from a fixed seed; the timed steps stay within one
episode (no reset), after one warm-up step.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import gymnasium as gym
import torch
from timing import alternate, env_step_timer, sync

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_env.data.synthetic import load_synthetic
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.build import vectorized
from mmrl_env.inner_run.settings import InnerRunConfig, resolve_device


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--ks", type=int, nargs="*", default=[1, 4, 16, 64, 256], help="K for Synthetic features")
    p.add_argument("--raw-ks", type=int, nargs="*", default=[1, 4, 16], help="K for Synthetic raw (small CNN)")
    p.add_argument("--iterations", type=int, default=20, help="timed iterations per measurement")
    p.add_argument("--single-runs", type=int, default=3, help="single runs timed per K (their mean is the baseline)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--sizes", choices=["dus", "equal"], default="dus",
                   help="dus: each run its own random n_kj (Σ_j n_kj = 2B); equal: every n_kj = B")
    p.add_argument("--repeats", type=int, default=3,
                   help="alternating rounds of single runs and engine; each side's fastest round counts")
    p.add_argument("--env", action="store_true", help="time env steps (make_vec vs single envs) instead")
    p.add_argument("--env-id", default="DUS-Synthetic", help="env id for --env")
    p.add_argument("--env-steps", type=int, default=4, help="timed env steps per measurement (--env)")
    p.add_argument("--engine", default="auto", help="engine for --env's vector env: auto, batched or sequential")
    return p.parse_args()


def sizes_for(k: int, batch: int, kind: str, seed: int = 0) -> list[list[int]]:
    """Per-run DUS sizes: n_audio in [B/4, 7B/4], n_video = 2B − n_audio (or all B)."""
    if kind == "equal":
        return [[batch, batch]] * k
    g = torch.Generator().manual_seed(seed)
    audio = torch.randint(batch // 4, 7 * batch // 4 + 1, (k,), generator=g).tolist()
    return [[a, 2 * batch - a] for a in audio]


def single_vectorize(ds, device: torch.device) -> bool:
    """How a separate run of one is stepped: what ``engine="auto"`` picks for K = 1 on ``device``."""
    return vectorized("auto", [spec.encoder for spec in ds.modalities], device)


def single_timer(ds, cfg: InnerRunConfig, device: torch.device, sizes: list[list[int]], iterations: int):
    """A function timing one round: mean seconds per iteration over ``len(sizes)`` separate runs of
    one (``InnerRun(num_runs=1)``, stepped as ``engine="auto"`` steps one run; built and warmed
    up once, 2 iterations each)."""
    runs = []
    for seed, s in enumerate(sizes):
        tr = InnerRun(ds, cfg, 1, device, vectorize=single_vectorize(ds, device))
        tr.reset([seed])
        tr.train(2, [s])
        runs.append((tr, s))

    def measure() -> float:
        total = 0.0
        for tr, s in runs:
            sync(device)
            start = time.perf_counter()
            tr.train(iterations, [s]).sum().item()
            sync(device)
            total += time.perf_counter() - start
        return total / (len(runs) * iterations)

    return measure


def engine_timer(ds, cfg: InnerRunConfig, device: torch.device, sizes: list[list[int]], iterations: int):
    """A function timing one round: seconds per batched iteration of all K runs (warmed up once)."""
    vt = InnerRun(ds, cfg, len(sizes), device, vectorize=True)
    vt.reset(list(range(len(sizes))))
    vt.train(2, sizes)

    def measure() -> float:
        sync(device)
        start = time.perf_counter()
        vt.train(iterations, sizes).sum().item()
        sync(device)
        return (time.perf_counter() - start) / iterations

    return measure


def time_single_env(args: argparse.Namespace, runs: int) -> float:
    """Mean seconds per env step of single envs (``gym.make``), each stepped ``--env-steps`` times."""
    total = 0.0
    for seed in range(runs):
        env = gym.make(args.env_id, device=args.device, batch_size=args.batch_size)
        total += env_step_timer(env, args.env_steps, seed)()
        env.close()
    return total / runs


def time_vector_env(args: argparse.Namespace, k: int) -> tuple[float, str]:
    """Seconds per step of the K-run vector env, and the trainer it chose."""
    env = gym.make_vec(args.env_id, num_envs=k, vectorization_mode="vector_entry_point", device=args.device,
                       batch_size=args.batch_size, engine=args.engine)
    elapsed = env_step_timer(env, args.env_steps, 0)()
    kind = type(env.inner_run).__name__
    env.close()
    return elapsed, kind


def main_env(args: argparse.Namespace) -> None:
    print("| env | K | engine | single env (steps/s) | vector env (run-steps/s) | speed-up vs K single envs |")
    print("|---|---|---|---|---|---|")
    for k in args.ks:
        single = time_single_env(args, min(k, args.single_runs))
        vector, kind = time_vector_env(args, k)
        ratio = single * k / vector
        print(f"| {args.env_id} | {k} | {kind} | {1 / single:.1f} | {k / vector:.1f} | **{ratio:.2f}×** |", flush=True)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    cfg = InnerRunConfig(batch_size=args.batch_size, epochs=1000)  # long runs: no run ends while timed
    print(f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`  \nDevice: {name}; torch "
          f"{torch.__version__}; B = {args.batch_size}; {args.iterations} timed iterations; baseline: mean of "
          f"{args.single_runs} single runs; best of {args.repeats} alternating rounds; sizes: {args.sizes}.\n")
    if args.env:
        main_env(args)
        return
    forms = {form: (load_synthetic(form=form), ks) for form, ks in (("features", args.ks), ("raw", args.raw_ks))}
    print("Single runs: `InnerRun(num_runs=1)` stepped as engine='auto' steps one run ("
          + "; ".join(f"{form}: {'batched' if single_vectorize(ds, device) else 'per-run loop, no vmap'}"
                      for form, (ds, _) in forms.items()) + "); the K-run engine: batched.\n")
    print("| data | K | single run (it/s) | engine (run-it/s) | speed-up vs K single runs |")
    print("|---|---|---|---|---|")
    for form, (ds, ks) in forms.items():
        for k in ks:
            sizes = sizes_for(k, args.batch_size, args.sizes)
            rounds = alternate({"single": single_timer(ds, cfg, device, sizes[: args.single_runs], args.iterations),
                                "engine": engine_timer(ds, cfg, device, sizes, args.iterations)}, args.repeats)
            single, engine = min(rounds["single"]), min(rounds["engine"])  # the least-disturbed rounds
            print(f"| Synthetic {form} | {k} | {1 / single:.0f} | {k / engine:.0f} | **{single * k / engine:.2f}×** |",
                  flush=True)


if __name__ == "__main__":
    main()
