"""Paired comparison of policies against one baseline over many seeds (BENCHMARKS.md, "Agent vs heuristics").

Every policy plays the same seeds (common random numbers: run k of every policy starts from
the same initial weights and data order), so the per-seed difference (policy − baseline) in
fused test accuracy removes the seed-to-seed spread that a mean ± std table keeps. For each
policy: mean of both, the mean difference with a 95 % bootstrap interval
(``scipy.stats.bootstrap``, BCa, on the per-seed differences) and the fraction of seeds where
the policy is better / tied.

    python bench/agent_vs_heuristic.py --env DUS-Synthetic --baseline dus-h \
        --policies ppo:runs/ppo/DUS-Synthetic_1,uniform --seeds 20

Policies are ``evaluate.py``'s: heuristic names or ``<algo>:<run dir>``. Unlike evaluate.py,
``--env-kwargs`` applies to the agents too (a run's own env settings, then these), so an
agent trained on one data seed can be scored on another (``dataset_kwargs.seed=1``) or on
``dataset_kwargs.form=raw``; heuristics get the first run's settings, then these, then their
own. ``--json`` writes the per-seed values too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.factory import make_agent  # noqa: E402
from agents.heuristics import HEURISTICS  # noqa: E402
from agents.rollout import run_episodes  # noqa: E402
from training.config import deep_merge, parse_kv, set_threads  # noqa: E402
from training.evaluate import load_run  # noqa: E402
from training.run_config import make_runs  # noqa: E402


def paired_interval(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """95 % BCa bootstrap interval of the mean per-seed difference; a constant difference
    (e.g. a policy identical to the baseline) has the degenerate interval (d, d)."""
    if np.ptp(diff) == 0:
        return float(diff[0]), float(diff[0])
    res = stats.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=10_000,
                          method="BCa", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def compare(per_seed: dict[str, np.ndarray], baseline: str) -> list[dict[str, float | str]]:
    """One row per policy other than the baseline: means, Δ, its interval, win/tie fractions."""
    base = per_seed[baseline]
    rows = []
    for name, values in per_seed.items():
        if name == baseline:
            continue
        diff = values - base
        low, high = paired_interval(diff)
        rows.append({"policy": name, "mean": float(values.mean()), "baseline": float(base.mean()),
                     "delta": float(diff.mean()), "ci_low": low, "ci_high": high,
                     "wins": float((diff > 0).mean()), "ties": float((diff == 0).mean())})
    return rows


def play(env_id: str, policies: list[str], overrides: dict, seeds: list[int], metric: str) -> dict[str, np.ndarray]:
    """Per policy, ``metric`` at the end of each seed's episode (one K-run vector env per policy)."""
    runs = {p: load_run(p, env_id) for p in policies if ":" in p}
    base = deep_merge(next(iter(runs.values()))[2] if runs else {}, overrides)
    out = {}
    for spec in policies:
        if spec in runs:
            name, agent = spec.partition(":")[0] + ":" + Path(spec.partition(":")[2]).name, runs[spec][1]
            venv = make_runs(env_id, deep_merge(runs[spec][2], overrides), seeds)
        else:
            name, venv = spec, make_runs(env_id, deep_merge(base, HEURISTICS[spec].env_kwargs), seeds)
            agent = make_agent(spec, venv, seed=seeds[0])
        episodes = run_episodes(agent, venv, seeds)
        venv.close()
        out[name] = 100 * np.array([ep["final"].get("test", {}).get(metric, np.nan) for ep in episodes])  # points
    return out


def main(argv: list[str] | None = None) -> list[dict[str, float | str]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="DUS-Synthetic")
    p.add_argument("--policies", required=True, help="comma-separated, as evaluate.py --policies")
    p.add_argument("--baseline", required=True, help="a heuristic name (or a policy of --policies)")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=10000)
    p.add_argument("--env-kwargs", nargs="*", default=[])
    p.add_argument("--metric", default="fused_acc", help="final test metric compared, in points (default fused_acc)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, help="write rows and per-seed values here")
    args = p.parse_args(argv)
    set_threads(args.threads)
    policies = [s for s in args.policies.split(",") if s]
    if args.baseline not in policies:
        policies.append(args.baseline)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    per_seed = play(args.env, policies, parse_kv(args.env_kwargs), seeds, args.metric)
    rows = compare(per_seed, args.baseline)
    print(f"{args.env} {' '.join(args.env_kwargs)}: {args.metric} over seeds {seeds[0]}–{seeds[-1]} "
          f"({len(seeds)}), paired vs {args.baseline}")
    print("| policy | mean | baseline | Δ (policy − baseline) | 95 % CI | seeds better / tied |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['policy']} | {r['mean']:.2f} | {r['baseline']:.2f} | {r['delta']:+.2f} | "
              f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] | {r['wins']:.2f} / {r['ties']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "seeds": seeds,
                                         "per_seed": {k: v.tolist() for k, v in per_seed.items()}}, indent=1))
    return rows


if __name__ == "__main__":
    main()
