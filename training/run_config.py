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
from agents.checkpoint import (
    DEFAULT_KEEP,
    CheckpointError,
    global_rng_state,
    latest_checkpoint,
    load_parameters,
    read_manifest,
    remove_stale_temporaries,
    set_global_rng_state,
)
from agents.factory import LEARNED, algo_names, make_agent, method_of
from agents.factory import RANGES as AGENT_RANGES
from agents.factory import check_hyperparams as check_agent_hyperparams
from agents.heuristics import HEURISTICS
from mmrl_env import limits
from mmrl_env.bounded_input import read_json_file, read_yaml_file
from mmrl_env.data.fingerprint import changes, fingerprint
from mmrl_env.envs.registration import short_id, translate_data_root, versioned_id
from training import ray_cluster
from training.cli_errors import ENV_ERRORS, UsageError, canonical_name, did_you_mean, message_of, usage_errors
from training.config import (
    CLI_KEYS,
    DEFAULT_EVAL_FREQ,
    DEFAULT_TIMESTEPS,
    EVAL_EPISODES,
    check_algo_kwargs,
    deep_merge,
    load_hyperparams,
    parse_kv,
)
from training.run_dirs import RunLock, next_run_dir, remove_run_dir, write_json_atomic, write_text_atomic
from training.validate import (
    _defaults,
    check_device,
    check_env_kwargs,
    check_out_dir,
    check_range,
    check_value,
)

COMMAND = ("python", "training/train_agent.py")
REQUIRED = ("env", "algo", "seed", "total_timesteps", "device", "eval_episodes", "hyperparams", "env_kwargs")
DATA = "data.json"  # the run's data as it was when the run started (mmrl_env/data/fingerprint.py)


def make_env(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make`` for the CLIs: a bad setting (unknown kwarg, value, dataset, learner, missing
    or damaged data) ends the program with the env's own message, which says what is valid."""
    try:
        return gym.make(env_id, **kwargs)
    except ENV_ERRORS as err:
        raise UsageError(message_of(err)) from err


def make_vec_env(env_id: str, num_envs: int, kwargs: dict[str, Any]) -> gym.vector.VectorEnv:
    """``gym.make_vec`` of the batched mmrl vector env for the CLIs (bad settings: one line, as ``make_env``)."""
    try:
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)
    except ENV_ERRORS as err:
        raise UsageError(message_of(err)) from err


def make_runs(env_id: str, kwargs: dict[str, Any], seeds: list[int]) -> gym.vector.VectorEnv:
    """One vector env with a run per seed, autoreset off (one episode each: ``agents.rollout.run_episodes``);
    its runs in Ray actors while a CLI uses ``--ray`` (``training.ray_cluster``)."""
    kwargs = {**kwargs, "autoreset_mode": "Disabled"}
    if ray_cluster.active():
        return ray_cluster.make_vec_env(env_id, len(seeds), kwargs)
    return make_vec_env(env_id, len(seeds), kwargs)


def agent_device(algo: str, device: str) -> str:
    """SB3 recommends the CPU for on-policy MLP agents; the inner trainer takes the GPU."""
    return "cpu" if device == "auto" and algo in ("ppo", "a2c", "reinforce") else device


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
            with usage_errors(f"-i {spec}: "):
                run_cfg = read_yaml_file(cfg_file) or {}
                run_algo = run_cfg.get("algo") if isinstance(run_cfg, dict) else None
            if run_algo is not None and run_algo != algo:
                raise UsageError(f"-i {spec}: that run trained a {run_algo} agent, not {algo}; "
                                 f"pass --algo {run_algo}")
        path = path / "model.zip"
    if not path.is_file():
        raise UsageError(f"-i {spec}: no saved agent at {path} "
                         "(expected a model.zip or a train_agent.py run directory)")
    return path


def check_hyperparams(algo: str, hp: dict[str, Any], source: str) -> None:
    """A config section: its names (against the algorithm's constructor), the CLI's own keys
    (``n_timesteps``, ``eval_episodes``), an agent's number ranges (``agents.factory``, the one
    home of those, which ``make_agent`` checks too) and the types of the other settings."""
    cls = {**LEARNED, **HEURISTICS}[algo]
    with usage_errors():
        check_algo_kwargs(cls, hp, source)
        if "env_kwargs" in hp and hp["env_kwargs"] is not None and not isinstance(hp["env_kwargs"], dict):
            raise ValueError(f"{source}: env_kwargs={hp['env_kwargs']!r}: expected a mapping, e.g. "
                             "env_kwargs: {epochs: 2}")
    for key in ("n_timesteps", "eval_episodes"):
        if key in hp:
            check_value(key, hp[key], 1, "int", f"{source}:", positive=True)
    agent_hp = {k: v for k, v in hp.items() if k not in CLI_KEYS}
    if algo in LEARNED:
        with usage_errors():
            check_agent_hyperparams(algo, agent_hp, source)
    defaults = _defaults(cls)
    for key, value in agent_hp.items():
        if key in defaults and not (algo in LEARNED and key in AGENT_RANGES):
            check_value(key, value, *defaults[key], f"{source}:")


def check_applies(name: str, method: str, what: str) -> None:
    """A heuristic made for one method (e.g. DUS) is refused on another ``method``'s env."""
    cls = HEURISTICS[name]
    if cls.methods and method not in cls.methods:
        valid = [n for n, c in HEURISTICS.items() if not c.methods or method in c.methods]
        raise UsageError(f"{what} {name!r} does not apply to {method} envs; for {method}: {', '.join(valid)}")


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting of a fresh run from flags and config, all checked (nothing is created)."""
    env_id, algo = args.env or "DUS-Synthetic", canonical_name(args.algo, algo_names()) or "ppo"
    if env_id not in gym.registry:
        raise UsageError(f"unknown env id {env_id!r}{did_you_mean(env_id, mmrl_env.env_ids())}; valid ids: "
                         f"{', '.join(mmrl_env.env_ids())} (each also as <id>-v0)")
    if algo not in algo_names():
        raise UsageError(f"unknown algo {algo!r}{did_you_mean(algo, algo_names())}; valid algos: "
                         f"{', '.join(algo_names())}")
    check_range("--seed", args.seed, 0)
    check_range("--n-envs", args.n_envs, 1)
    check_range("--periodic-eval-episodes", args.periodic_eval_episodes, 1)
    check_range("-n/--total-timesteps", args.total_timesteps, 1, " env steps")
    check_range("--eval-episodes", args.eval_episodes, 1)
    check_range("--eval-freq", args.eval_freq, 0, " env steps (0 = off)")
    check_range("--save-freq", args.save_freq, 1, " env steps")
    check_range("--keep-checkpoints", getattr(args, "keep_checkpoints", None), 1)
    check_device(args.device or "auto")
    check_out_dir(args.log_folder, "-f/--log-folder")
    check_out_dir(args.tensorboard_log, "-tb/--tensorboard-log")
    source = args.config or f"configs/{algo}.yaml"
    with usage_errors():
        hp = deep_merge(load_hyperparams(algo, env_id, args.config), parse_kv(args.hyperparams or [], "--hyperparams"))
    check_hyperparams(algo, hp, source + (" / --hyperparams" if args.hyperparams else ""))
    with usage_errors():
        env_kwargs = deep_merge(hp.pop("env_kwargs", {}) or {}, parse_kv(args.env_kwargs or []))
    device = args.device or "auto"
    env_kwargs.setdefault("device", device)
    if algo in HEURISTICS:  # the env settings the heuristic stands for; the user's keys win
        env_kwargs = deep_merge(HEURISTICS[algo].env_kwargs, env_kwargs)
    check_env_kwargs(env_id, env_kwargs)
    n_envs = args.n_envs if args.n_envs is not None else int(hp.pop("n_envs", 1))
    hp.pop("n_envs", None)
    check_range("n_envs", n_envs, 1)
    if n_envs > 1 and algo not in LEARNED:
        raise UsageError(f"--n-envs {n_envs}: a heuristic ({algo}) steps one env; use --n-envs 1")
    vec = args.vec_env or "batched"
    address, workers = getattr(args, "ray", None), getattr(args, "ray_workers", None)
    ray_cluster.check_flags(address, workers)
    if address is not None:
        if algo not in LEARNED:
            raise UsageError(f"--ray: a heuristic ({algo}) steps one in-process env; --ray is for learned agents")
        if vec != "batched":
            raise UsageError(f"--ray with --vec-env {vec}: the Ray actors host the batched vector env (drop --vec-env)")
        workers = workers or 1
        if n_envs < workers:
            raise UsageError(f"--n-envs {n_envs} with --ray-workers {workers}: every actor hosts at least one run "
                             f"(use --n-envs >= {workers})")
    if n_envs > 1 and args.save_freq and vec != "batched":
        raise UsageError(f"--save-freq with --vec-env {vec}: checkpoints cover one env or the batched vector env "
                         "(drop --save-freq, or use --vec-env batched)")
    trained = None
    if args.trained_agent:
        if algo not in LEARNED:
            raise UsageError(f"-i/--trained-agent continues a learned agent ({', '.join(LEARNED)}), not {algo}")
        trained = str(trained_agent_path(args.trained_agent, algo))
    total = args.total_timesteps or int(hp.pop("n_timesteps", DEFAULT_TIMESTEPS))
    hp.pop("n_timesteps", None)
    total = whole_rollouts(algo, hp, total, n_envs)
    eval_episodes = args.eval_episodes or int(hp.pop("eval_episodes", 3))
    hp.pop("eval_episodes", None)
    periodic = EVAL_EPISODES if args.periodic_eval_episodes is None else args.periodic_eval_episodes
    baselines = [b for b in args.baselines.split(",") if b] if args.baselines else None
    for name in baselines or []:
        if name not in HEURISTICS:
            raise UsageError(f"unknown baseline {name!r}; heuristics: {', '.join(HEURISTICS)}")
    eval_freq = DEFAULT_EVAL_FREQ if args.eval_freq is None else args.eval_freq
    return {"env": env_id, "algo": algo, "seed": 0 if args.seed is None else args.seed, "total_timesteps": total,
            "device": device, "deterministic": bool(args.deterministic), "eval_episodes": eval_episodes,
            "eval_freq": eval_freq, "periodic_eval_episodes": periodic, "baselines": baselines,
            "tensorboard_log": args.tensorboard_log, "log_test": bool(getattr(args, "log_test", False)),
            "n_envs": n_envs, "vec_env": vec,
            "ray": address, "ray_workers": workers,
            "trained_agent": trained, "save_freq": args.save_freq,
            "keep_checkpoints": getattr(args, "keep_checkpoints", None) or DEFAULT_KEEP,
            "hyperparams": hp, "env_kwargs": env_kwargs}


def try_build(cfg: dict[str, Any], trust: bool = False) -> dict[str, Any]:
    """Build the env, the agent and the baselines once, as the run will: every setting the
    checks above cannot judge (data on disk, learner options, SB3's own checks, a ``-i`` agent
    file whose tensors do not load; with ``trust`` that file is SB3's to read later) fails
    here, before the run directory exists. The global RNGs are left as they were. Returns the
    fingerprint of the data the env loaded (no second load for it)."""
    rng = global_rng_state()
    env = make_env(cfg["env"], cfg["env_kwargs"])
    try:
        data = data_fingerprint(cfg, env.unwrapped.trainer.dataset)
        if cfg["algo"] in HEURISTICS:
            check_applies(cfg["algo"], method_of(env), "heuristic")
        for name in cfg["baselines"] or []:
            check_applies(name, method_of(env), "baseline")
        with usage_errors(f"{cfg['algo']} with these hyperparameters: "):
            try:
                agent = make_agent(cfg["algo"], env, dict(cfg["hyperparams"]), seed=cfg["seed"],
                                   device=agent_device(cfg["algo"], cfg["device"]))
            except AssertionError as err:  # SB3 checks its arguments with assert
                raise ValueError(str(err)) from err
        if cfg.get("trained_agent") and not trust:
            try:
                load_parameters(agent, Path(cfg["trained_agent"]))
            except CheckpointError as err:
                raise UsageError(f"-i {cfg['trained_agent']}: {err}") from err
    finally:
        env.close()
        set_global_rng_state(rng)
    return data


def data_fingerprint(cfg: dict[str, Any], dataset: Any = None) -> dict[str, Any]:
    """The fingerprint of the data the run's env reads (its dataset and ``dataset_kwargs``;
    ``dataset``: that data as an env already loaded it)."""
    with usage_errors():
        kwargs = translate_data_root(cfg["env_kwargs"]).get("dataset_kwargs") or {}
        return fingerprint(short_id(cfg["env"]).split("-", 1)[1], kwargs, dataset)


def check_data(run_dir: Path, cfg: dict[str, Any], allow_change: bool) -> None:
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


def new_run(args: argparse.Namespace, argv: list[str]) -> tuple[Path, dict[str, Any]]:
    """Resolve and check the settings of a fresh run, then create its directory (locked for
    this process) with config.yaml and command.txt. Bad input never creates a directory."""
    cfg = resolve(args)
    data = try_build(cfg, trust=bool(getattr(args, "trust_checkpoint", False)))
    yaml.safe_dump(cfg)  # plain data only: a value YAML cannot hold fails here, before any directory exists
    made = [next_run_dir(Path(args.log_folder), cfg["algo"], cfg["env"])]
    try:
        RunLock(made[0])
        if cfg["tensorboard_log"]:  # a -tb root shared by runs: each run gets, and locks, its own folder in it
            made.append(next_run_dir(Path(cfg["tensorboard_log"]), cfg["algo"], cfg["env"]))
            RunLock(made[1], "writing into it")
            cfg["tensorboard_log"] = str(made[1])
        write_text_atomic(made[0] / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        write_text_atomic(made[0] / "command.txt", shlex.join([*COMMAND, *argv]) + "\n")
        write_json_atomic(made[0] / DATA, data)
    except BaseException:
        for folder in made:
            remove_run_dir(folder)
        raise
    return made[0], cfg


# flags that define a run: with --resume they come from the run directory's config.yaml
RUN_FLAGS = ("seed", "total_timesteps", "config", "hyperparams", "trained_agent", "n_envs", "vec_env", "env_kwargs",
             "device", "eval_episodes", "baselines", "tensorboard_log", "eval_freq", "periodic_eval_episodes",
             "deterministic", "ray_workers")


def load_run_config(path: Path) -> tuple[dict[str, Any], None] | tuple[None, str]:
    """A run's config.yaml and None, or None and what is wrong with it (unreadable, empty, settings missing)."""
    try:
        cfg = read_yaml_file(path, "run config")
    except (ValueError, yaml.YAMLError) as err:
        return None, f"{type(err).__name__}: {message_of(err)}"
    if not isinstance(cfg, dict) or any(k not in cfg for k in REQUIRED):
        return None, "it is empty or misses settings" if cfg else "it is empty"
    return cfg, None


def read_config(run_dir: Path, log: Any = print) -> dict[str, Any]:
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
    return saved


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


def resumed_run(args: argparse.Namespace, argv: list[str]) -> tuple[Path, dict[str, Any]]:
    """The run directory and settings of ``--resume``, refusing flags that contradict them.
    Takes the run's lock first; only a resume that will run is added to command.txt."""
    run_dir = Path(args.resume)
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"--resume {run_dir}: no config.yaml there; expected a run directory of train_agent.py")
    check_range("--save-freq", args.save_freq, 1, " env steps")
    check_range("--keep-checkpoints", getattr(args, "keep_checkpoints", None), 1)
    given = [f"--{f.replace('_', '-')}" for f in RUN_FLAGS if getattr(args, f) is not None]
    RunLock(run_dir)
    cfg = read_config(run_dir)
    if cfg.get("tensorboard_log"):  # the run's own folder under -tb (see new_run)
        Path(cfg["tensorboard_log"]).mkdir(parents=True, exist_ok=True)
        RunLock(Path(cfg["tensorboard_log"]), "resuming this run")
    for flag, value in (("env", args.env), ("algo", canonical_name(args.algo, algo_names()))):
        ids = (versioned_id(value), versioned_id(cfg[flag])) if flag == "env" and value else (value, cfg[flag])
        if value is not None and ids[0] != ids[1]:
            raise UsageError(f"--resume {run_dir}: that run has --{flag} {cfg[flag]}, not {value}; "
                             f"drop --{flag} or resume a {value} run")
    if given:
        raise UsageError(f"--resume continues the run as configured in {run_dir / 'config.yaml'}; "
                         f"{', '.join(given)} cannot change it (start a new run instead)")
    if finished(run_dir):
        raise UsageError(f"--resume {run_dir}: that run has finished (results.json exists)")
    check_device(cfg["device"], f"{run_dir / 'config.yaml'}: device")
    check_data(run_dir, cfg, getattr(args, "allow_data_change", False))
    address = getattr(args, "ray", None)
    if address is not None and not cfg.get("ray"):
        raise UsageError(f"--resume {run_dir}: that run did not use Ray; its checkpoints hold in-process envs "
                         "(drop --ray)")
    changed = {k: v for k, v in (("save_freq", args.save_freq),
                                  ("keep_checkpoints", getattr(args, "keep_checkpoints", None)),
                                  ("ray", address))  # a Ray run may resume on another cluster
               if v is not None and v != cfg.get(k)}
    cfg = {**cfg, "save_freq": cfg.get("save_freq"), "keep_checkpoints": cfg.get("keep_checkpoints") or DEFAULT_KEEP,
           **changed}
    if changed:  # how often to checkpoint does not change the outcome: the new value is kept for later resumes
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    for stale in remove_stale_temporaries(run_dir):
        print(f"removed {stale} (a checkpoint whose save was interrupted)")
    with (run_dir / "command.txt").open("a") as f:
        f.write(shlex.join([*COMMAND, *argv]) + "\n")
    return run_dir, cfg
