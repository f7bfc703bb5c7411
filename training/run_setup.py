"""Open a ``train_agent.py`` run: a fresh one (its :class:`~mmrl_training.run_config.RunConfig`
resolved, tried once, then its directory made and locked, with ``config.yaml``) or a resumed one
(its ``config.yaml`` read back, flags that would change it refused).

What one invocation does without changing the run's outcome (where to put new runs, progress
bars, verbosity, trusting a checkpoint) is :class:`RunOptions`; it is not saved.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmrl_agents.factory import algo_names, make_agent, method_of
from mmrl_env import limits
from mmrl_env.bounded_input import read_json_file
from mmrl_env.data.fingerprint import changes, fingerprint
from mmrl_env.envs.registration import short_id, translate_data_root, versioned_id
from mmrl_training.checkpoint import (
    CheckpointError,
    global_rng_state,
    latest_checkpoint,
    load_parameters,
    read_manifest,
    remove_stale_temporaries,
    set_global_rng_state,
)
from mmrl_training.cli_errors import UsageError, canonical_name, usage_errors
from mmrl_training.run_config import RunConfig, agent_device, check_applies, load_run_config, make_env, resolve
from mmrl_training.run_dirs import RunLock, next_run_dir, remove_run_dir, write_json_atomic, write_text_atomic
from mmrl_training.validate import check_device, check_range

COMMAND = ("python", "training/train_agent.py")
DATA = "data.json"  # the run's data as it was when the run started (mmrl_env/data/fingerprint.py)
# flags that define a run: with --resume they come from the run directory's config.yaml
RUN_FLAGS = ("seed", "total_timesteps", "config", "hyperparams", "trained_agent", "n_envs", "vec_env", "env_kwargs",
             "device", "eval_episodes", "baselines", "tensorboard_log", "eval_freq", "periodic_eval_episodes",
             "deterministic", "ray_workers")


@dataclass(frozen=True)
class RunOptions:
    """How this invocation runs, not what it computes: none of it is in ``config.yaml``."""

    argv: tuple[str, ...] = ()  # the command line, for command.txt
    log_folder: Path = Path("runs")
    resume: Path | None = None
    trust_checkpoint: bool = False  # SB3's own loader for -i / --resume (it unpickles)
    allow_data_change: bool = False
    progress: bool = True
    verbose: int = 0

    @classmethod
    def from_args(cls, args: argparse.Namespace, argv: list[str]) -> RunOptions:
        return cls(tuple(argv), Path(args.log_folder), Path(args.resume) if args.resume else None,
                   bool(args.trust_checkpoint), bool(args.allow_data_change), not args.no_progress, args.verbose)


def open_run(args: argparse.Namespace, argv: list[str]) -> tuple[Path, RunConfig, RunOptions]:
    """The run directory and settings of ``train_agent.py``'s parsed ``args`` (``argv``: its
    command line), and this invocation's options: the only reader of the ``Namespace``."""
    options = RunOptions.from_args(args, argv)
    run_dir, cfg = resumed_run(options.resume, args, options) if options.resume else new_run(args, options)
    return run_dir, cfg, options


def try_build(cfg: RunConfig, trust: bool = False) -> dict[str, Any]:
    """Build the env, the agent and the baselines once, as the run will: every setting the
    checks of ``resolve`` cannot judge (data on disk, learner options, SB3's own checks, a ``-i``
    agent file whose tensors do not load; with ``trust`` that file is SB3's to read later) fails
    here, before the run directory exists. The global RNGs are left as they were. Returns the
    fingerprint of the data the env loaded (no second load for it)."""
    rng = global_rng_state()
    agent_cfg = cfg.agent
    env = make_env(cfg.env.id, cfg.env.kwargs)
    try:
        data = data_fingerprint(cfg, env.unwrapped.inner_run.dataset)
        if not agent_cfg.learned:
            check_applies(agent_cfg.algo, method_of(env), "heuristic")
        for name in cfg.evaluation.baselines or ():
            check_applies(name, method_of(env), "baseline")
        with usage_errors(f"{agent_cfg.algo} with these hyperparameters: "):
            try:
                agent = make_agent(agent_cfg.algo, env, dict(agent_cfg.hyperparams), seed=agent_cfg.seed,
                                   device=agent_device(agent_cfg.algo, agent_cfg.device))
            except AssertionError as err:  # SB3 checks its arguments with assert
                raise ValueError(str(err)) from err
        if agent_cfg.trained_agent and not trust:
            try:
                load_parameters(agent, Path(agent_cfg.trained_agent))
            except CheckpointError as err:
                raise UsageError(f"-i {agent_cfg.trained_agent}: {err}") from err
    finally:
        env.close()
        set_global_rng_state(rng)
    return data


def data_fingerprint(cfg: RunConfig, dataset: Any = None) -> dict[str, Any]:
    """The fingerprint of the data the run's env reads (its dataset and ``dataset_kwargs``;
    ``dataset``: that data as an env already loaded it)."""
    with usage_errors():
        kwargs = translate_data_root(cfg.env.kwargs).get("dataset_kwargs") or {}
        return fingerprint(short_id(cfg.env.id).split("-", 1)[1], kwargs, dataset)


def check_data(run_dir: Path, cfg: RunConfig, allow_change: bool) -> None:
    """``--resume``: refuse a run whose data changed since it started (the rest of the run would
    train on other data than its first part), unless ``allow_change``; then the new data is recorded."""
    path = run_dir / DATA
    try:
        old = read_json_file(path, "data fingerprint")
    except (OSError, ValueError):
        print(f"note: {path} is missing or unreadable; cannot tell whether the data changed since the run started")
        old = None
    new = data_fingerprint(cfg)
    found = changes(old, new) if isinstance(old, dict) else []
    if found and not allow_change:
        raise UsageError(f"--resume {run_dir}: the data changed since the run started ({'; '.join(found)}); "
                         "restore it, start a new run, or add --allow-data-change to continue on the new data "
                         "(its splits must keep their sizes)")
    if found:
        print(f"note: the data changed since the run started ({'; '.join(found)}); continuing on the new data "
              "(--allow-data-change)")
    if found or old is None:
        write_json_atomic(path, new)


def save_config(run_dir: Path, cfg: RunConfig) -> None:
    write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def new_run(args: argparse.Namespace, options: RunOptions) -> tuple[Path, RunConfig]:
    """Resolve and check the settings of a fresh run, then create its directory (locked for
    this process) with config.yaml and command.txt. Bad input never creates a directory."""
    cfg = resolve(args)
    data = try_build(cfg, trust=options.trust_checkpoint)
    yaml.safe_dump(cfg.to_dict())  # plain data only: a value YAML cannot hold fails here, before any directory exists
    made = [next_run_dir(options.log_folder, cfg.agent.algo, cfg.env.id)]
    try:
        RunLock(made[0])
        if cfg.output.tensorboard_log:  # a -tb root shared by runs: each run gets, and locks, its own folder in it
            made.append(next_run_dir(Path(cfg.output.tensorboard_log), cfg.agent.algo, cfg.env.id))
            RunLock(made[1], "writing into it")
            cfg = cfg.with_output(tensorboard_log=str(made[1]))
        save_config(made[0], cfg)
        write_text_atomic(made[0] / "command.txt", shlex.join([*COMMAND, *options.argv]) + "\n")
        write_json_atomic(made[0] / DATA, data)
    except BaseException:
        for folder in made:
            remove_run_dir(folder)
        raise
    return made[0], cfg


def read_config(run_dir: Path, log: Any = print) -> RunConfig:
    """The run's config.yaml; when it is empty or damaged, the copy in the newest checkpoint
    (and config.yaml is rewritten from it)."""
    path = run_dir / "config.yaml"
    cfg, problem = load_run_config(path)
    if cfg is not None:
        return cfg
    checkpoint = latest_checkpoint(run_dir, log)
    saved = read_manifest(checkpoint).get("config") if checkpoint else None
    if not saved:
        raise UsageError(f"--resume {run_dir}: {path} is damaged ({problem}) and no checkpoint holds a copy; "
                         "the run cannot be resumed (start a new one)")
    log(f"{path} is damaged ({problem}); using the copy in {checkpoint} and rewriting it")
    write_text_atomic(path, yaml.safe_dump(saved, sort_keys=False))
    return RunConfig.from_dict(saved)


def finished(run_dir: Path, log: Any = print) -> bool:
    """True when results.json holds a final table; a damaged one is reported and redone."""
    path = run_dir / "results.json"
    if not path.exists():
        return False
    try:
        return "results" in read_json_file(path, "results file", limits.MAX_RECORD_BYTES)
    except (OSError, ValueError, TypeError) as err:
        log(f"{path} is damaged ({type(err).__name__}); the final comparison will be run again")
        return False


def resumed_run(run_dir: Path, args: argparse.Namespace, options: RunOptions) -> tuple[Path, RunConfig]:
    """The run directory and settings of ``--resume run_dir``, refusing flags that contradict them.
    Takes the run's lock first; only a resume that will run is added to command.txt."""
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"--resume {run_dir}: no config.yaml there; expected a run directory of train_agent.py")
    check_range("--save-freq", args.save_freq, 1, " env steps")
    check_range("--keep-checkpoints", args.keep_checkpoints, 1)
    given = [f"--{f.replace('_', '-')}" for f in RUN_FLAGS if getattr(args, f) is not None]
    RunLock(run_dir)
    cfg = read_config(run_dir)
    if cfg.output.tensorboard_log:  # the run's own folder under -tb (see new_run)
        Path(cfg.output.tensorboard_log).mkdir(parents=True, exist_ok=True)
        RunLock(Path(cfg.output.tensorboard_log), "resuming this run")
    _refuse_other_run(args, run_dir, cfg, given)
    if finished(run_dir):
        raise UsageError(f"--resume {run_dir}: that run has finished (results.json exists)")
    check_device(cfg.agent.device, f"{run_dir / 'config.yaml'}: device")
    check_data(run_dir, cfg, options.allow_data_change)
    cfg = _new_checkpointing(args, run_dir, cfg)
    for stale in remove_stale_temporaries(run_dir):
        print(f"removed {stale} (a checkpoint whose save was interrupted)")
    with (run_dir / "command.txt").open("a") as f:
        f.write(shlex.join([*COMMAND, *options.argv]) + "\n")
    return run_dir, cfg


def _refuse_other_run(args: argparse.Namespace, run_dir: Path, cfg: RunConfig, given: list[str]) -> None:
    """``--env`` / ``--algo`` of another run, or any flag that would change this one."""
    for flag, value, have in (("env", args.env, cfg.env.id),
                              ("algo", canonical_name(args.algo, algo_names()), cfg.agent.algo)):
        ids = (versioned_id(value), versioned_id(have)) if flag == "env" and value else (value, have)
        if value is not None and ids[0] != ids[1]:
            raise UsageError(f"--resume {run_dir}: that run has --{flag} {have}, not {value}; "
                             f"drop --{flag} or resume a {value} run")
    if given:
        raise UsageError(f"--resume continues the run as configured in {run_dir / 'config.yaml'}; "
                         f"{', '.join(given)} cannot change it (start a new run instead)")


def _new_checkpointing(args: argparse.Namespace, run_dir: Path, cfg: RunConfig) -> RunConfig:
    """``--save-freq``, ``--keep-checkpoints`` and a Ray run's ``--ray`` address may change on
    resume: they do not change the outcome. The new values are kept in config.yaml for later resumes."""
    ray = cfg.ray
    if args.ray is not None:
        if ray is None:
            raise UsageError(f"--resume {run_dir}: that run did not use Ray; its checkpoints hold in-process envs "
                             "(drop --ray)")
        ray = dataclasses.replace(ray, address=args.ray)  # a Ray run may resume on another cluster
    out = cfg.output
    new = dataclasses.replace(cfg.with_output(save_freq=out.save_freq if args.save_freq is None else args.save_freq,
                                              keep_checkpoints=args.keep_checkpoints or out.keep_checkpoints),
                              ray=ray)
    if new != cfg:
        save_config(run_dir, new)
    return new
