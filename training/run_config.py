"""The settings and directory of a ``train_agent.py`` run: a fresh one resolved from the
command line and the config file, or a resumed one read back from its ``config.yaml``.

Everything that decides a run's outcome is written to ``config.yaml`` once, so that
``--resume`` can rebuild the same run and refuse flags that would change it.
"""

from __future__ import annotations

import argparse
import shlex
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


def make_env(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` for the CLIs: a bad setting (unknown kwarg, value, dataset, learner, missing
    data) ends the program with the env's own message, which says what is valid, not a traceback."""
    try:
        return gym.make(env_id, **kwargs)
    except KeyError as err:
        raise SystemExit(f"error: {err.args[0]}") from err
    except (TypeError, ValueError, FileNotFoundError, NotImplementedError) as err:
        raise SystemExit(f"error: {err}") from err


def next_run_dir(root: Path, algo: str, env_id: str) -> Path:
    base = root / algo
    n = 1
    while (base / f"{env_id}_{n}").exists():
        n += 1
    path = base / f"{env_id}_{n}"
    path.mkdir(parents=True)
    return path


def new_run(args: argparse.Namespace, argv: list[str]) -> tuple[Path, dict[str, Any]]:
    """Resolve the settings of a fresh run, create its directory, write config and command."""
    env_id, algo = args.env or "DUS-Synthetic", args.algo or "ppo"
    if env_id not in gym.registry:
        raise SystemExit(f"unknown env id {env_id!r}; valid ids: {', '.join(mmrl_env.env_ids())}")
    if algo not in algo_names():
        raise SystemExit(f"unknown algo {algo!r}; valid algos: {', '.join(algo_names())}")
    hp = load_hyperparams(algo, env_id, args.config)
    check_algo_kwargs({**LEARNED, **HEURISTICS}[algo], hp, args.config or f"configs/{algo}.yaml")
    env_kwargs = deep_merge(hp.pop("env_kwargs", {}) or {}, parse_kv(args.env_kwargs or []))
    device = args.device or "auto"
    env_kwargs.setdefault("device", device)
    if algo in HEURISTICS:  # the env settings the heuristic stands for; the user's keys win
        env_kwargs = deep_merge(HEURISTICS[algo].env_kwargs, env_kwargs)
    total = args.total_timesteps or int(hp.pop("n_timesteps", DEFAULT_TIMESTEPS))
    hp.pop("n_timesteps", None)
    eval_episodes = args.eval_episodes or int(hp.pop("eval_episodes", 3))
    hp.pop("eval_episodes", None)
    baselines = args.baselines.split(",") if args.baselines else None
    for name in baselines or []:
        if name not in HEURISTICS:
            raise SystemExit(f"unknown baseline {name!r}; heuristics: {', '.join(HEURISTICS)}")

    run_dir = next_run_dir(Path(args.log_folder), algo, env_id)
    (run_dir / "command.txt").write_text(shlex.join([*COMMAND, *argv]) + "\n")
    eval_freq = DEFAULT_EVAL_FREQ if args.eval_freq is None else args.eval_freq
    if eval_freq < 0:
        raise SystemExit(f"--eval-freq must be >= 0 env steps (0 = off), got {eval_freq}")
    cfg = {"env": env_id, "algo": algo, "seed": 0 if args.seed is None else args.seed, "total_timesteps": total,
           "device": device, "deterministic": bool(args.deterministic), "eval_episodes": eval_episodes,
           "eval_freq": eval_freq, "baselines": baselines,
           "tensorboard_log": args.tensorboard_log, "hyperparams": hp, "env_kwargs": env_kwargs}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run_dir, cfg


# flags that define a run: with --resume they come from the run directory's config.yaml
RUN_FLAGS = ("seed", "total_timesteps", "config", "env_kwargs", "device", "eval_episodes", "baselines",
             "tensorboard_log", "eval_freq", "deterministic")


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
