r"""Train an agent (or run a heuristic) on an mmrl environment; compare with baselines.

examples:
  python training/train_agent.py --env DUS-Synthetic                 # PPO, defaults
  python training/train_agent.py --env DUS-Synthetic --algo dus-h    # a heuristic policy
  python training/train_agent.py --env DUS-Synthetic --algo sac -c configs/sac.yaml \
      --env-kwargs epochs=4 dataset_kwargs.n_train=1000
  python training/train_agent.py --env DUS-CremaD                    # data in $MMRL_DATA/cremad

The flags and YAML keys are rl-baselines3-zoo's where they mean the same thing (-n/--n-timesteps,
-conf/--conf-file, -params/--hyperparams, -i/--trained-agent, --n-envs, --env-kwargs k:v, -f,
-tb, --seed, --device, --save-freq); --eval-episodes differs: here it is the number of seeds of
the final comparison, and --periodic-eval-episodes is the zoo's meaning.

The run directory (--log-folder/<algo>/<env>_<n>) keeps the saved agent, the resolved config,
the command line, the TensorBoard events (env/: the policy's per-step quantities; sb3_1/:
SB3's training curves) and results.json (the final table). --save-freq N checkpoints the
whole run (agent, env, RNGs) every N env steps (and every run is checkpointed when training
ends), Ctrl-C checkpoints and stops, and
--resume <run dir> continues to the same result as an uninterrupted run.
--ray [ADDRESS] --ray-workers N puts the --n-envs inner runs (and the final comparison's)
in N Ray actors, locally or on a cluster (docs/ray.md).
Checkpoints hold no code: --resume rebuilds the agent from config.yaml and reads only tensors
and plain values (--trust-checkpoint lets SB3 unpickle the agent, for a run directory you
trust); -i reads only the tensors of the given model.zip too. Bad input is refused before
the run directory is made: one line on stderr, exit status 2 (training/cli_errors.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mmrl_env
from mmrl_agents.names import HEURISTIC_NAMES, LEARNED_NAMES
from mmrl_training import ray_cluster
from mmrl_training.cli_errors import UsageError, run_cli
from mmrl_training.config import DEFAULT_EVAL_FREQ, DEFAULT_THREADS, DEFAULT_TIMESTEPS, EVAL_EPISODES, set_threads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    heuristics = ", ".join(HEURISTIC_NAMES)
    p.add_argument("--env", default=None, metavar="ID",
                   help=f"env id, short or versioned (-v0) (default DUS-Synthetic): {', '.join(mmrl_env.env_ids())}")
    p.add_argument("--algo", default=None,
                   help=f"agent (default ppo): learned {', '.join(LEARNED_NAMES)}; heuristics {heuristics}")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the agent and the training env (default 0); the final comparison uses seeds "
                   "seed+10000, seed+10001, ...")
    p.add_argument("-n", "--n-timesteps", "--total-timesteps", dest="total_timesteps", type=int, default=None,
                   metavar="N", help=f"env steps to train for (default: the config's n_timesteps, else "
                   f"{DEFAULT_TIMESTEPS}); rounded up to whole rollouts (n_steps x n_envs) for ppo/a2c/reinforce")
    p.add_argument("-c", "-conf", "--conf-file", "--config", dest="config", default=None, metavar="YAML",
                   help="hyperparameter file, rl-zoo format: one section per env id, 'default' for the rest "
                   "(default: the shipped configs/<algo>.yaml)")
    p.add_argument("-params", "--hyperparams", nargs="+", default=None, metavar="KEY:VALUE",
                   help="override keys of the config section (agent constructor arguments, n_envs, policy, ...), "
                   "e.g. -params learning_rate:3e-4 n_steps:128; values are YAML")
    p.add_argument("-i", "--trained-agent", default=None, metavar="PATH",
                   help="continue training a saved learned agent: its model.zip or its run directory (the agent "
                   "keeps its own hyperparameters; a new run directory is made)")
    p.add_argument("--n-envs", type=int, default=None, metavar="N",
                   help="env copies stepped together by the learned agent (default: the config's n_envs, else 1)")
    p.add_argument("--vec-env", choices=("batched", "dummy", "subproc"), default=None,
                   help="with --n-envs > 1: batched (default: the K inner runs train as one batched engine step; "
                   "checkpoints supported), or K env copies in SB3's DummyVecEnv / SubprocVecEnv")
    ray_cluster.add_flags(p)
    p.add_argument("--env-kwargs", nargs="+", default=None, metavar="KEY=VALUE",
                   help="env keyword arguments, key=value or key:value; values are YAML; dotted keys nest "
                   "(dataset_kwargs.n_train=500); data_root=DIR is short for dataset_kwargs.root=DIR")
    p.add_argument("--device", default=None,
                   help="device of the inner training and the agent: auto (default; CUDA when present, on-policy "
                   "MLP agents stay on the CPU), cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", "--num-threads", dest="threads", type=int, default=None, metavar="N",
                   help=f"torch CPU threads (default {DEFAULT_THREADS}: fastest for the small inner models, "
                   "see BENCHMARKS.md; 0 = torch's own choice)")
    p.add_argument("-f", "--log-folder", default="runs", help="root of the run directories (default runs)")
    p.add_argument("-tb", "--tensorboard-log", default=None, metavar="DIR",
                   help="TensorBoard root: the run logs into its own new folder DIR/<algo>/<env>_<n>, so runs "
                   "sharing DIR never mix curves (default: the run directory)")
    p.add_argument("--log-test", action="store_true",
                   help="also log each training episode's test metrics (episode/test/...); off by default, since a "
                   "test curve invites picking a run by its test score (the final comparison's test table stays)")
    p.add_argument("--eval-episodes", type=int, default=None, metavar="N",
                   help="seeds (episodes) of the final comparison of the agent and the baselines "
                   "(default: the config's eval_episodes, else 3)")
    p.add_argument("--eval-freq", type=int, default=None, metavar="N",
                   help=f"every N env steps, run the deterministic policy on a separate env and log "
                   f"eval/mean_reward (default {DEFAULT_EVAL_FREQ}; 0 = off; learned agents only)")
    p.add_argument("--periodic-eval-episodes", type=int, default=None, metavar="N",
                   help=f"episodes of each periodic evaluation (default {EVAL_EPISODES}; rl-zoo calls this "
                   "--eval-episodes)")
    p.add_argument("--baselines", default=None, metavar="A,B",
                   help=f"comma-separated heuristics to compare against (default: the env method's heuristics and "
                   f"random): {heuristics}")
    p.add_argument("--save-freq", type=int, default=None, metavar="N",
                   help="checkpoint every N env steps (learned agents: at the first rollout boundary past each "
                   "multiple); default: only on Ctrl-C and when training ends")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest checkpoint, with the settings of its config.yaml")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic CUDA kernels, so that --resume on a GPU continues bit for bit where PyTorch "
                   "allows it (slower; mmrl_env/determinism.py); CPU runs are deterministic anyway")
    p.add_argument("--keep-checkpoints", type=int, default=None, metavar="N",
                   help="checkpoints kept (default 2: a damaged newest one falls back to the previous)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="with --resume: continue although the run's data changed since it started (its files' "
                   "sizes or times, or Synthetic's settings; data.json in the run directory); refused otherwise")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="with --resume or -i: load the agent with SB3's own loader, which unpickles (runs code "
                   "from) the zip file; only for files you trust")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars (training and baselines)")
    p.add_argument("-v", "--verbose", type=int, default=0, metavar="LEVEL",
                   help="SB3's verbosity: 0 quiet (default), 1 its training table every rollout, 2 debug")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.trust_checkpoint and not (args.resume or args.trained_agent):
        raise UsageError("--trust-checkpoint applies to --resume and -i/--trained-agent only")
    if args.allow_data_change and not args.resume:
        raise UsageError("--allow-data-change applies to --resume only")
    from mmrl_training.agent_training import run  # torch, SB3, ...: only once the arguments are parsed (fast --help)

    return run(args, sys.argv[1:] if argv is None else argv)


def cli() -> None:
    """The console script's entry point (``[project.scripts]``), as ``python training/train_agent.py``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
