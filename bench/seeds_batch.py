"""Seeds as one batch: ``evaluate.py`` and ``train_mml.py`` before (a loop over seeds, one
inner run at a time) and after (all seeds as one K-run batched engine), as ratios measured in
one run.

evaluate: the whole CLI ``evaluate.py --policies dus-h,uniform --seeds K`` (env construction,
episodes, report and plots; and its episodes alone) — before: with its policy loop swapped for the old one (per
policy one ``gym.make`` env and ``run_episode`` per seed); after: as it is (per policy one
K-run vector env, ``run_episodes``). train_mml: K separate ``train_mml.run`` calls (seed by
seed) against one ``train_mml.run_seeds`` with K seeds. Rounds alternate (before, after,
before, ...); each side's fastest round counts. Wall and process CPU time are both given.

    python bench/seeds_batch.py --seeds 8 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from collections.abc import Callable

import torch
from timing import alternate

import mmrl_env  # noqa: F401
from agents.factory import make_agent
from agents.heuristics import HEURISTICS
from training import evaluate, seed_comparison, train_mml
from training.config import deep_merge, parse_kv
from training.rollout import run_episode
from training.run_config import make_env

ENV = "DUS-Synthetic"
POLICIES = ("dus-h", "uniform")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # the CLI's table: printed, but not here
        fn()
    return time.perf_counter() - t0, time.process_time() - c0


def best_of(before: Callable[[], object], after: Callable[[], object], repeats: int) -> dict[str, tuple[float, float]]:
    """Alternating rounds; the fastest (wall, cpu) of each side."""
    times = alternate({"before": lambda: timed(before), "after": lambda: timed(after)}, repeats)
    return {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=8, help="K: seeds per policy / learner (default 8)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--env-kwargs", nargs="*", default=["epochs=4", "val_size=200", "device=cpu",
                                                       "dataset_kwargs.n_train=1024", "dataset_kwargs.n_val=200",
                                                       "dataset_kwargs.n_test=500"])
    p.add_argument("--mml-epochs", type=int, default=4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    seeds = [10_000 + i for i in range(a.seeds)]
    kwargs = parse_kv(a.env_kwargs)

    batched = seed_comparison.evaluate_policies

    def old_loop(args: argparse.Namespace, seeds: list[int], specs: list[str]) -> tuple[dict, tuple[str, ...]]:
        """evaluate.py's policy loop before the seeds were batched (heuristics only)."""
        records = {}
        for spec in specs:
            env = make_env(args.env, deep_merge(kwargs, HEURISTICS[spec].env_kwargs))
            agent = make_agent(spec, env, seed=seeds[0])
            modalities = env.unwrapped.control.modalities
            records[spec] = [seed_comparison.episode_record(run_episode(agent, env, seed=s), modalities) for s in seeds]
            env.close()
        return records, modalities

    out = tempfile.mkdtemp(prefix="seeds_batch_")
    argv = ["--env", ENV, "--policies", ",".join(POLICIES), "--seeds", str(a.seeds), "--first-seed", str(seeds[0]),
            "--no-progress", "--threads", str(a.threads), "--out", out, "--env-kwargs", *a.env_kwargs]

    def eval_before() -> None:
        seed_comparison.evaluate_policies = old_loop
        try:
            evaluate.main(argv)
        finally:
            seed_comparison.evaluate_policies = batched

    def eval_after() -> None:
        evaluate.main(argv)

    args = evaluate.parse_args(argv)
    specs = list(POLICIES)

    common = {"epochs": a.mml_epochs, "device": "cpu", "progress": False,
              "dataset_kwargs": kwargs.get("dataset_kwargs")}

    def mml_before() -> None:
        for s in seeds:
            train_mml.run("Synthetic", "joint", seed=s, **common)

    def mml_after() -> None:
        train_mml.run_seeds("Synthetic", "joint", seeds=seeds, **common)

    print(f"K = {a.seeds} seeds, {a.threads} torch thread(s), best of {a.repeats} alternating rounds")
    print("| what | before: loop over seeds (s, wall / cpu) | after: one K-run batch (s, wall / cpu) "
          "| speed-up (wall) | speed-up (cpu) |")
    print("|---|---|---|---|---|")
    for label, before, after in ((f"evaluate.py --policies {','.join(POLICIES)} (whole CLI)", eval_before, eval_after),
                                 ("its episodes only (`evaluate_policies`)", lambda: old_loop(args, seeds, specs),
                                  lambda: batched(args, seeds, specs)),
                                 ("train_mml.py joint", mml_before, mml_after)):
        t = best_of(before, after, a.repeats)
        (bw, bc), (aw, ac) = t["before"], t["after"]
        print(f"| {label} | {bw:.2f} / {bc:.2f} | {aw:.2f} / {ac:.2f} | **{bw / aw:.2f}×** | {bc / ac:.2f}× |",
              flush=True)


if __name__ == "__main__":
    main()
