"""The settings and directory of a ``train_agent.py`` run: a fresh one resolved from the
command line and the config file, or a resumed one read back from its ``config.yaml``.

Everything that decides a run's outcome is written to ``config.yaml`` once, so that
``--resume`` can rebuild the same run and refuse flags that would change it.
"""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

import mmrl_env
from agents.factory import LEARNED, algo_names
from agents.heuristics import HEURISTICS
from training.config import check_algo_kwargs, deep_merge, load_hyperparams, parse_kv

DEFAULT_TIMESTEPS = 4096
COMMAND = ("python", "training/train_agent.py")


DEFAULT_EVAL_FREQ = 1024  # env steps between deterministic evaluations of a learning agent (0 = off)
EVAL_EPISODES = 3  # episodes per periodic evaluation; different inner-run seeds each time


def make_env(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` for the CLIs: a bad setting (unknown kwarg, value, dataset, learner, missing
    data) ends the program with the env's own message, which says what is valid, not a traceback."""
    try:
        return gym.make(env_id, **kwargs)
    except KeyError as err:
        raise SystemExit(f"error: {err.args[0]}") from err
    except (TypeError, ValueError, FileNotFoundError, NotImplementedError, ImportError) as err:
        raise SystemExit(f"error: {err}") from err


def next_run_dir(root: Path, algo: str, env_id: str) -> Path:
    base = root / algo
    n = 1
    while (base / f"{env_id}_{n}").exists():
        n += 1
    path = base / f"{env_id}_{n}"
    path.mkdir(parents=True)
    return path


def whole_rollouts(algo: str, hp: dict[str, Any], total: int, n_envs: int) -> int:
    """On-policy agents train in whole rollouts of ``n_steps`` x ``n_envs`` env steps, so SB3
    would silently run past ``total``: round it up and say so."""
    if algo not in LEARNED:
        return total
    default = inspect.signature(LEARNED[algo].__init__).parameters.get("n_steps")
    n_steps = hp.get("n_steps", default.default if default is not None else None)
    if not n_steps:
        return total
    rollout = int(n_steps) * n_envs
    rounded = -(-total // rollout) * rollout
    if rounded != total:
        print(f"note: {algo} trains in whole rollouts of n_steps x n_envs = {n_steps} x {n_envs} = {rollout} env "
              f"steps; -n {total} rounded up to {rounded}", file=sys.stderr)
    return rounded


def trained_agent_path(spec: str, algo: str) -> Path:
    """``-i``: a ``model.zip`` or a run directory holding one (whose algo must be ``algo``)."""
    path = Path(spec)
    if path.is_dir():
        cfg_file = path / "config.yaml"
        if cfg_file.is_file():
            run_algo = (yaml.safe_load(cfg_file.read_text()) or {}).get("algo")
            if run_algo is not None and run_algo != algo:
                raise SystemExit(f"-i {spec}: that run trained a {run_algo} agent, not {algo}; "
                                 f"pass --algo {run_algo}")
        path = path / "model.zip"
    if not path.is_file():
        raise SystemExit(f"-i {spec}: no saved agent at {path} "
                         "(expected a model.zip or a train_agent.py run directory)")
    return path


def new_run(args: argparse.Namespace, argv: list[str]) -> tuple[Path, dict[str, Any]]:
    """Resolve the settings of a fresh run, create its directory, write config and command."""
    env_id, algo = args.env or "DUS-Synthetic", args.algo or "ppo"
    if env_id not in gym.registry:
        raise SystemExit(f"unknown env id {env_id!r}; valid ids: {', '.join(mmrl_env.env_ids())} "
                         "(each also as <id>-v0)")
    if algo not in algo_names():
        raise SystemExit(f"unknown algo {algo!r}; valid algos: {', '.join(algo_names())}")
    source = args.config or f"configs/{algo}.yaml"
    hp = deep_merge(load_hyperparams(algo, env_id, args.config), parse_kv(args.hyperparams or []))
    check_algo_kwargs({**LEARNED, **HEURISTICS}[algo], hp, source + (" / --hyperparams" if args.hyperparams else ""))
    env_kwargs = deep_merge(hp.pop("env_kwargs", {}) or {}, parse_kv(args.env_kwargs or []))
    device = args.device or "auto"
    env_kwargs.setdefault("device", device)
    if algo in HEURISTICS:  # the env settings the heuristic stands for; the user's keys win
        env_kwargs = deep_merge(HEURISTICS[algo].env_kwargs, env_kwargs)
    n_envs = args.n_envs if args.n_envs is not None else int(hp.pop("n_envs", 1))
    hp.pop("n_envs", None)
    if n_envs < 1:
        raise SystemExit(f"--n-envs must be >= 1, got {n_envs}")
    if n_envs > 1 and algo not in LEARNED:
        raise SystemExit(f"--n-envs {n_envs}: a heuristic ({algo}) steps one env; use --n-envs 1")
    if n_envs > 1 and args.save_freq:
        raise SystemExit("--save-freq checkpoints a single env; with --n-envs > 1 it is not supported yet "
                         "(drop --save-freq or use --n-envs 1)")
    trained = None
    if args.trained_agent:
        if algo not in LEARNED:
            raise SystemExit(f"-i/--trained-agent continues a learned agent ({', '.join(LEARNED)}), not {algo}")
        trained = str(trained_agent_path(args.trained_agent, algo))
    total = args.total_timesteps or int(hp.pop("n_timesteps", DEFAULT_TIMESTEPS))
    hp.pop("n_timesteps", None)
    if total < 1:
        raise SystemExit(f"-n/--n-timesteps must be a positive number of env steps, got {total}")
    total = whole_rollouts(algo, hp, total, n_envs)
    eval_episodes = args.eval_episodes or int(hp.pop("eval_episodes", 3))
    hp.pop("eval_episodes", None)
    periodic = EVAL_EPISODES if args.periodic_eval_episodes is None else args.periodic_eval_episodes
    if periodic < 1:
        raise SystemExit(f"--periodic-eval-episodes must be >= 1, got {periodic}")
    baselines = args.baselines.split(",") if args.baselines else None
    for name in baselines or []:
        if name not in HEURISTICS:
            raise SystemExit(f"unknown baseline {name!r}; heuristics: {', '.join(HEURISTICS)}")
    eval_freq = DEFAULT_EVAL_FREQ if args.eval_freq is None else args.eval_freq
    if eval_freq < 0:
        raise SystemExit(f"--eval-freq must be >= 0 env steps (0 = off), got {eval_freq}")

    run_dir = next_run_dir(Path(args.log_folder), algo, env_id)
    (run_dir / "command.txt").write_text(shlex.join([*COMMAND, *argv]) + "\n")
    cfg = {"env": env_id, "algo": algo, "seed": 0 if args.seed is None else args.seed, "total_timesteps": total,
           "device": device, "deterministic": bool(args.deterministic), "eval_episodes": eval_episodes,
           "eval_freq": eval_freq,
           "periodic_eval_episodes": periodic, "baselines": baselines, "tensorboard_log": args.tensorboard_log,
           "n_envs": n_envs, "vec_env": args.vec_env or "dummy", "trained_agent": trained,
           "hyperparams": hp, "env_kwargs": env_kwargs}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run_dir, cfg


# flags that define a run: with --resume they come from the run directory's config.yaml
RUN_FLAGS = ("seed", "total_timesteps", "config", "hyperparams", "trained_agent", "n_envs", "vec_env", "env_kwargs",
             "device", "eval_episodes", "baselines", "tensorboard_log", "eval_freq", "periodic_eval_episodes",
             "deterministic")


def resumed_run(args: argparse.Namespace, argv: list[str]) -> tuple[Path, dict[str, Any]]:
    """The run directory and settings of ``--resume``, refusing flags that contradict them."""
    run_dir = Path(args.resume)
    if not (run_dir / "config.yaml").is_file():
        raise SystemExit(f"--resume {run_dir}: no config.yaml there; expected a run directory of train_agent.py")
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    for flag, value in (("env", args.env), ("algo", args.algo)):
        if value is not None and value != cfg[flag]:
            raise SystemExit(f"--resume {run_dir}: that run has --{flag} {cfg[flag]}, not {value}; "
                             f"drop --{flag} or resume a {value} run")
    given = [f"--{f.replace('_', '-')}" for f in RUN_FLAGS if getattr(args, f) is not None]
    if given:
        raise SystemExit(f"--resume continues the run as configured in {run_dir / 'config.yaml'}; "
                         f"{', '.join(given)} cannot change it (start a new run instead)")
    if (run_dir / "results.json").exists():
        raise SystemExit(f"--resume {run_dir}: that run has finished (results.json exists)")
    with (run_dir / "command.txt").open("a") as f:
        f.write(shlex.join([*COMMAND, *argv]) + "\n")
    return run_dir, cfg
