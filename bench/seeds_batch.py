"""Seeds as one batch: the evaluation and the plain learner runs before (a loop over seeds,
one inner run at a time) and after (all seeds as one K-run batched engine), as ratios measured
in one run.

evaluation: the policies ``dus-h,uniform`` on K seeds — before: per policy one ``gym.make``
env and ``run_episode`` per seed; after: ``mmrl_training.evaluation.evaluate`` (what ``evaluate.py``
and ``train_agent.py``'s final comparison run: per policy one K-run vector env,
``run_episodes``). learners: K separate ``learner_runs.run`` calls (seed by seed) against one
``learner_runs.run_seeds`` with K seeds. Rounds alternate (before, after, before, ...); each
side's fastest round counts. Wall and process CPU time are both given.

    python bench/seeds_batch.py --seeds 8 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from collections.abc import Callable

import gymnasium as gym
import torch
from timing import alternate

import mmrl_env  # noqa: F401
from mmrl_agents.factory import make_agent
from mmrl_training import learner_runs
from mmrl_training.config import parse_kv
from mmrl_training.evaluation import Policy, evaluate, with_heuristic_kwargs
from mmrl_training.report import episode_record
from mmrl_training.rollout import run_episode

ENV = "DUS-Synthetic"
POLICIES = ("dus-h", "uniform")


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):  # anything printed: not here
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

    specs = list(POLICIES)

    def eval_before() -> None:
        """The policies' episodes before the seeds were batched: one env per policy, a loop over seeds."""
        for spec in specs:
            env = gym.make(ENV, **with_heuristic_kwargs(spec, kwargs))
            agent = make_agent(spec, env, seed=seeds[0])
            modalities = env.unwrapped.control.modalities
            for s in seeds:
                episode_record(run_episode(agent, env, seed=s), modalities)
            env.close()

    def eval_after() -> None:
        evaluate(ENV, [Policy.of_heuristic(spec, kwargs, seeds[0]) for spec in specs], seeds)

    common = {"epochs": a.mml_epochs, "device": "cpu", "progress": False,
              "dataset_kwargs": kwargs.get("dataset_kwargs")}

    def mml_before() -> None:
        for s in seeds:
            learner_runs.run("Synthetic", "joint", seed=s, **common)

    def mml_after() -> None:
        learner_runs.run_seeds("Synthetic", "joint", seeds=seeds, **common)

    print(f"K = {a.seeds} seeds, {a.threads} torch thread(s), best of {a.repeats} alternating rounds")
    print("| what | before: loop over seeds (s, wall / cpu) | after: one K-run batch (s, wall / cpu) "
          "| speed-up (wall) | speed-up (cpu) |")
    print("|---|---|---|---|---|")
    for label, before, after in ((f"evaluation of {','.join(POLICIES)} (`mmrl_training.evaluation.evaluate`)",
                                  eval_before, eval_after),
                                 ("plain learner runs, joint (`learner_runs`)", mml_before, mml_after)):
        t = best_of(before, after, a.repeats)
        (bw, bc), (aw, ac) = t["before"], t["after"]
        print(f"| {label} | {bw:.2f} / {bc:.2f} | {aw:.2f} / {ac:.2f} | **{bw / aw:.2f}×** | {bc / ac:.2f}× |",
              flush=True)


if __name__ == "__main__":
    main()
