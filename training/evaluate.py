"""Compare policies (or inner learners) over seeds: tables, a paired comparison and plots in one directory.

examples:
  python training/evaluate.py --env DUS-Synthetic --policies ppo:runs/ppo/DUS-Synthetic_1,dus-h,uniform
  python training/evaluate.py --env BSS-Synthetic --policies bss-h,bss-l --baseline full --seeds 10
  python training/evaluate.py --env DUS-Synthetic --learners joint,boosting,ogm_ge,mla --seeds 5

Each policy plays its seeds (default 20) as ONE K-run vector env (K = --seeds; the inner runs
train as one batched engine, training/rollout.py run_episodes), and --learners trains each
learner's seeds as one K-run trainer (learner_runs.run_seeds). Run k is seeded with seed k whatever
the policy: every policy starts from the same initial weights and data order per seed (common
random numbers, tests/test_evaluate.py), so a per-seed difference between two policies is not
blurred by the noise they share. Every policy is compared with --baseline on the same seeds
(default: no rebalancing, uniform on DUS envs, full on BSS envs, joint for --learners; added,
with a note, when not among them): the mean per-seed difference of test fused accuracy,
macro-F1 and mAP with a 95 % bootstrap interval, the probability of improvement and the
interquartile mean with its interval (training/stats.py: scipy's percentile bootstrap, fixed seed).
A policy is a heuristic name (its env is made with the env settings it stands for, as in
train_agent.py) or <algo>:<run dir> (the agent in <run dir>/model.zip, on the env of
<run dir>/config.yaml, then --env-kwargs: e.g. dataset_kwargs.seed=1 scores an agent on other
data, a generalisation check). Heuristics run on the env settings of the first run dir given,
then --env-kwargs. --learners trains each inner learner without RL (train_mml.py) instead;
each seed reports its last epoch, or with --select best-val its epoch of best validation accuracy.
Output (--out, default a new runs/eval/<env>_<n>; an --out that another evaluation is writing,
or that holds an earlier one's results without --overwrite, is refused): results.md (two
tables: mean ± std over seeds of fused and per-modality test accuracy, macro-F1 and mAP, the
final gap between the modalities' accuracies, the return (policies only: a learner has none);
then "paired vs <baseline>" with a better / worse / undecided verdict per policy), results.csv,
comparison.csv, intervals.png (the paired differences and IQMs with their intervals) and PNG
plots of validation accuracy, the policy's choices and the CMD over training. The terminal
shows the main columns and the paired table.
A run's agent is rebuilt from its config.yaml and only the tensors of model.zip are
read (--trust-checkpoint: SB3's own loader, which unpickles). Bad input: one line on
stderr, exit status 2, and no output directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import mmrl_env
from mmrl_agents.names import HEURISTIC_NAMES, LEARNED_NAMES
from mmrl_env.learners import LEARNERS
from mmrl_training import ray_cluster
from mmrl_training.cli_errors import run_cli
from mmrl_training.config import DEFAULT_BASELINES, DEFAULT_THREADS, LEARNER_BASELINE, set_threads
from mmrl_training.learner_runs import SELECTIONS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="DUS-Synthetic", metavar="ID",
                   help=f"env id, short or -v0 (default DUS-Synthetic): {', '.join(mmrl_env.env_ids())}")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--policies", metavar="A,B,...",
                      help=f"comma-separated: heuristics ({', '.join(HEURISTIC_NAMES)}) "
                      f"and/or <algo>:<run dir> with algo in {', '.join(LEARNED_NAMES)}")
    what.add_argument("--learners", metavar="A,B,...",
                      help=f"comma-separated inner learners, trained without RL: {', '.join(LEARNERS)}")
    p.add_argument("--seeds", type=int, default=20, metavar="N",
                   help="seeds (episodes / runs) per policy, all as one batch (default 20)")
    p.add_argument("--first-seed", type=int, default=10_000, metavar="S",
                   help="seeds are S, S+1, ... (default 10000: the seeds of train_agent.py's final comparison)")
    p.add_argument("--baseline", default=None, metavar="NAME",
                   help="what every policy is compared with, seed by seed (added when not among them; default: "
                   f"no rebalancing, {', '.join(f'{v} on {k}' for k, v in DEFAULT_BASELINES.items())} envs, "
                   f"{LEARNER_BASELINE} for --learners)")
    p.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="env keyword arguments as in train_agent.py (key=value or key:value; data_root=DIR); "
                   "applied after a run's own settings, to its agent and to the heuristics")
    p.add_argument("--learner-kwargs", nargs="*", default=[], metavar="LEARNER.KEY=VALUE",
                   help="--learners mode: per-learner keyword arguments, e.g. boosting.check_every=2")
    p.add_argument("--select", choices=SELECTIONS, default=None,
                   help="--learners mode: the model each seed reports, its last epoch (default) or its best epoch on "
                   "validation (best-val); never chosen on the test set")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory (default: a new runs/eval/<env>_<n>); refused while another evaluation "
                   "writes there, and when it holds an earlier evaluation's results (unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier evaluation in --out DIR")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"torch CPU threads (default {DEFAULT_THREADS}, see BENCHMARKS.md; 0 = torch's own choice)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load <run dir>/model.zip with SB3's own loader, which unpickles (runs code from) it; "
                   "only for run directories you trust")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    ray_cluster.add_flags(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    set_threads(args.threads)
    from mmrl_training.seed_comparison import run  # torch, SB3, scipy, ...: only once the arguments are parsed

    return run(args)


def cli() -> None:
    """The console script's entry point (``[project.scripts]``), as ``python training/evaluate.py``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
