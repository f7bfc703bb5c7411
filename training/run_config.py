"""The settings of a ``train_agent.py`` run, typed: :class:`RunConfig`, made of one small frozen
part per concern (env, agent, evaluation, output, Ray). :func:`resolve` builds it from the
command line and the config file, one checking function per part, before anything is created;
:func:`load_run_config` reads it back from a run's ``config.yaml``. Also the env makers and the
agent rules the CLIs share.

Everything that decides a run's outcome is written to ``config.yaml`` once, as one flat mapping
(:meth:`RunConfig.to_dict`; its keys have not changed, so older runs still resume), so that
``--resume`` can rebuild the same run and refuse flags that would change it (``mmrl_training.run_setup``).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

import mmrl_env
from mmrl_agents.factory import LEARNED, algo_names
from mmrl_agents.factory import RANGES as AGENT_RANGES
from mmrl_agents.factory import check_hyperparams as check_agent_hyperparams
from mmrl_agents.heuristics import HEURISTICS
from mmrl_env.bounded_input import read_yaml_file
from mmrl_training import ray_cluster
from mmrl_training.checkpoint import DEFAULT_KEEP
from mmrl_training.cli_errors import ENV_ERRORS, UsageError, canonical_name, did_you_mean, message_of, usage_errors
from mmrl_training.config import (
    DEFAULT_EVAL_FREQ,
    DEFAULT_TIMESTEPS,
    EVAL_EPISODES,
    check_algo_kwargs,
    deep_merge,
    load_hyperparams,
    parse_kv,
)
from mmrl_training.validate import _defaults, check_device, check_env_kwargs, check_out_dir, check_range, check_value

REQUIRED = ("env", "algo", "seed", "total_timesteps", "device", "eval_episodes", "hyperparams", "env_kwargs")
# keys of a config section that train_agent.py reads itself; the rest (policy included) go to the agent
SECTION_KEYS = ("env_kwargs", "n_envs", "n_timesteps", "eval_episodes")


@dataclass(frozen=True)
class EnvConfig:
    """The env the agent trains on, and how many copies of it step together."""

    id: str
    kwargs: dict[str, Any]
    n_envs: int = 1
    vec_env: str = "batched"  # batched: one K-run mmrl vector env; dummy / subproc: K copies in SB3's VecEnvs


@dataclass(frozen=True)
class AgentConfig:
    """The agent and its training: ``hyperparams`` are its constructor arguments; ``device`` is
    also the env's unless ``env_kwargs`` names one; ``trained_agent``: the ``-i`` agent continued."""

    algo: str
    hyperparams: dict[str, Any]
    seed: int = 0
    total_timesteps: int = DEFAULT_TIMESTEPS
    device: str = "auto"
    trained_agent: str | None = None

    @property
    def learned(self) -> bool:
        return self.algo in LEARNED


@dataclass(frozen=True)
class EvalConfig:
    """The final comparison (``episodes`` held-out seeds, with ``baselines``; ``None``: the
    method's own) and the periodic one (every ``freq`` env steps, 0 = off)."""

    episodes: int = 3
    freq: int = 0  # 0 for runs from before periodic evaluations; a new run's default is DEFAULT_EVAL_FREQ
    periodic_episodes: int = EVAL_EPISODES
    baselines: tuple[str, ...] | None = None


@dataclass(frozen=True)
class OutputConfig:
    """What the run writes besides its results: TensorBoard events and checkpoints."""

    tensorboard_log: str | None = None  # the run's own folder under -tb; None: the run directory
    log_test: bool = False
    save_freq: int | None = None
    keep_checkpoints: int = DEFAULT_KEEP


@dataclass(frozen=True)
class RunConfig:
    """Every setting of one ``train_agent.py`` run (``ray``: ``None`` = in-process envs)."""

    env: EnvConfig
    agent: AgentConfig
    evaluation: EvalConfig
    output: OutputConfig
    ray: ray_cluster.RaySettings | None = None
    deterministic: bool = False

    @property
    def vectorised(self) -> bool:
        """The agent steps a vector env: K > 1 inner runs, or runs in Ray actors."""
        return self.env.n_envs > 1 or self.ray is not None

    def with_output(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, output=dataclasses.replace(self.output, **changes))

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping of ``config.yaml`` and of a checkpoint's manifest (keys and order as
        they have always been: older runs resume, and rl-zoo-like tools can read it)."""
        env, agent, evaluation, out, ray = self.env, self.agent, self.evaluation, self.output, self.ray
        return {"env": env.id, "algo": agent.algo, "seed": agent.seed, "total_timesteps": agent.total_timesteps,
                "device": agent.device, "deterministic": self.deterministic, "eval_episodes": evaluation.episodes,
                "eval_freq": evaluation.freq, "periodic_eval_episodes": evaluation.periodic_episodes,
                "baselines": None if evaluation.baselines is None else list(evaluation.baselines),
                "tensorboard_log": out.tensorboard_log, "log_test": out.log_test,
                "n_envs": env.n_envs, "vec_env": env.vec_env,
                "ray": ray.address if ray else None, "ray_workers": ray.workers if ray else None,
                "trained_agent": agent.trained_agent, "save_freq": out.save_freq,
                "keep_checkpoints": out.keep_checkpoints, "hyperparams": agent.hyperparams, "env_kwargs": env.kwargs}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """A run's ``config.yaml`` (keys of :data:`REQUIRED` present); a key that older runs do
        not have takes the value those runs ran with."""
        baselines = d.get("baselines")
        return cls(EnvConfig(d["env"], d["env_kwargs"], d.get("n_envs") or 1, d.get("vec_env") or "batched"),
                   AgentConfig(d["algo"], d["hyperparams"], d["seed"], d["total_timesteps"], d["device"],
                               d.get("trained_agent")),
                   EvalConfig(d["eval_episodes"], d.get("eval_freq") or 0,
                              d.get("periodic_eval_episodes") or EVAL_EPISODES,
                              None if baselines is None else tuple(baselines)),
                   OutputConfig(d.get("tensorboard_log"), bool(d.get("log_test")), d.get("save_freq"),
                                d.get("keep_checkpoints") or DEFAULT_KEEP),
                   ray_cluster.RaySettings(d["ray"], d.get("ray_workers") or 1) if d.get("ray") else None,
                   bool(d.get("deterministic")))


def load_run_config(path: Path) -> tuple[RunConfig, None] | tuple[None, str]:
    """A run's config.yaml and None, or None and what is wrong with it (unreadable, empty, settings missing)."""
    try:
        raw = read_yaml_file(path, "run config")
    except (ValueError, yaml.YAMLError) as err:
        return None, f"{type(err).__name__}: {message_of(err)}"
    if not isinstance(raw, dict) or any(k not in raw for k in REQUIRED):
        return None, "it is empty or misses settings" if raw else "it is empty"
    return RunConfig.from_dict(raw), None


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


def make_runs(env_id: str, kwargs: dict[str, Any], seeds: list[int],
              ray: ray_cluster.RaySettings | None = None) -> gym.vector.VectorEnv:
    """One vector env with a run per seed, autoreset off (one episode each: ``mmrl_training.rollout.run_episodes``);
    its runs in Ray actors with ``ray`` (``mmrl_training.ray_cluster``)."""
    kwargs = {**kwargs, "autoreset_mode": "Disabled"}
    if ray is not None:
        return ray_cluster.make_vec_env(env_id, len(seeds), kwargs, ray)
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
    (``n_timesteps``, ``eval_episodes``), an agent's number ranges (``mmrl_agents.factory``, the one
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
    agent_hp = {k: v for k, v in hp.items() if k not in SECTION_KEYS}
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


def resolve(args: argparse.Namespace) -> RunConfig:
    """Every setting of a fresh run from flags and config, all checked (nothing is created)."""
    env_id, algo = _env_id(args.env), _algo(args.algo)
    _check_flags(args)
    section = _section(args, algo, env_id)
    env = _env_part(args, algo, env_id, section)
    ray = _ray_part(args, algo, env)
    output = _output_part(args, env)
    agent = _agent_part(args, algo, section, env)
    return RunConfig(env, agent, _evaluation_part(args, section), output, ray, bool(args.deterministic))


def _env_id(name: str | None) -> str:
    env_id = name or "DUS-Synthetic"
    if env_id not in gym.registry:
        raise UsageError(f"unknown env id {env_id!r}{did_you_mean(env_id, mmrl_env.env_ids())}; valid ids: "
                         f"{', '.join(mmrl_env.env_ids())} (each also as <id>-v0)")
    return env_id


def _algo(name: str | None) -> str:
    algo = canonical_name(name, algo_names()) or "ppo"
    if algo not in algo_names():
        raise UsageError(f"unknown algo {algo!r}{did_you_mean(algo, algo_names())}; valid algos: "
                         f"{', '.join(algo_names())}")
    return algo


def _check_flags(args: argparse.Namespace) -> None:
    """The ranges of the number flags, the device and the output folders."""
    check_range("--seed", args.seed, 0)
    check_range("--n-envs", args.n_envs, 1)
    check_range("--periodic-eval-episodes", args.periodic_eval_episodes, 1)
    check_range("-n/--total-timesteps", args.total_timesteps, 1, " env steps")
    check_range("--eval-episodes", args.eval_episodes, 1)
    check_range("--eval-freq", args.eval_freq, 0, " env steps (0 = off)")
    check_range("--save-freq", args.save_freq, 1, " env steps")
    check_range("--keep-checkpoints", args.keep_checkpoints, 1)
    check_device(args.device or "auto")
    check_out_dir(args.log_folder, "-f/--log-folder")
    check_out_dir(args.tensorboard_log, "-tb/--tensorboard-log")


def _section(args: argparse.Namespace, algo: str, env_id: str) -> dict[str, Any]:
    """The config file's section for the env, with ``--hyperparams`` over it, checked."""
    source = args.config or f"configs/{algo}.yaml"
    with usage_errors():
        section = deep_merge(load_hyperparams(algo, env_id, args.config),
                             parse_kv(args.hyperparams or [], "--hyperparams"))
    check_hyperparams(algo, section, source + (" / --hyperparams" if args.hyperparams else ""))
    return section


def _env_part(args: argparse.Namespace, algo: str, env_id: str, section: dict[str, Any]) -> EnvConfig:
    """The env settings (config's ``env_kwargs``, then ``--env-kwargs``; a heuristic's own under
    them) and the env copies."""
    with usage_errors():
        kwargs = deep_merge(section.get("env_kwargs") or {}, parse_kv(args.env_kwargs or []))
    kwargs.setdefault("device", args.device or "auto")
    if algo in HEURISTICS:  # the env settings the heuristic stands for; the user's keys win
        kwargs = deep_merge(HEURISTICS[algo].env_kwargs, kwargs)
    check_env_kwargs(env_id, kwargs)
    n_envs = args.n_envs if args.n_envs is not None else int(section.get("n_envs", 1))
    check_range("n_envs", n_envs, 1)
    if n_envs > 1 and algo not in LEARNED:
        raise UsageError(f"--n-envs {n_envs}: a heuristic ({algo}) steps one env; use --n-envs 1")
    return EnvConfig(env_id, kwargs, n_envs, args.vec_env or "batched")


def _ray_part(args: argparse.Namespace, algo: str, env: EnvConfig) -> ray_cluster.RaySettings | None:
    """``--ray``: for a learned agent on the batched vector env, at least one run per actor."""
    ray = ray_cluster.settings(args.ray, args.ray_workers)
    if ray is None:
        return None
    if algo not in LEARNED:
        raise UsageError(f"--ray: a heuristic ({algo}) steps one in-process env; --ray is for learned agents")
    if env.vec_env != "batched":
        raise UsageError(f"--ray with --vec-env {env.vec_env}: the Ray actors host the batched vector env "
                         "(drop --vec-env)")
    if env.n_envs < ray.workers:
        raise UsageError(f"--n-envs {env.n_envs} with --ray-workers {ray.workers}: every actor hosts at least one "
                         f"run (use --n-envs >= {ray.workers})")
    return ray


def _output_part(args: argparse.Namespace, env: EnvConfig) -> OutputConfig:
    if env.n_envs > 1 and args.save_freq and env.vec_env != "batched":
        raise UsageError(f"--save-freq with --vec-env {env.vec_env}: checkpoints cover one env or the batched "
                         "vector env (drop --save-freq, or use --vec-env batched)")
    return OutputConfig(args.tensorboard_log, bool(args.log_test), args.save_freq,
                        args.keep_checkpoints or DEFAULT_KEEP)


def _agent_part(args: argparse.Namespace, algo: str, section: dict[str, Any], env: EnvConfig) -> AgentConfig:
    """The agent's constructor arguments, its training length (whole rollouts) and the ``-i`` agent."""
    trained = None
    if args.trained_agent:
        if algo not in LEARNED:
            raise UsageError(f"-i/--trained-agent continues a learned agent ({', '.join(LEARNED)}), not {algo}")
        trained = str(trained_agent_path(args.trained_agent, algo))
    hp = {k: v for k, v in section.items() if k not in SECTION_KEYS}
    total = args.total_timesteps or int(section.get("n_timesteps", DEFAULT_TIMESTEPS))
    total = whole_rollouts(algo, hp, total, env.n_envs)
    seed = 0 if args.seed is None else args.seed
    return AgentConfig(algo, hp, seed, total, args.device or "auto", trained)


def _evaluation_part(args: argparse.Namespace, section: dict[str, Any]) -> EvalConfig:
    episodes = args.eval_episodes or int(section.get("eval_episodes", 3))
    periodic = EVAL_EPISODES if args.periodic_eval_episodes is None else args.periodic_eval_episodes
    baselines = tuple(b for b in args.baselines.split(",") if b) if args.baselines else None
    for name in baselines or ():
        if name not in HEURISTICS:
            raise UsageError(f"unknown baseline {name!r}; heuristics: {', '.join(HEURISTICS)}")
    freq = DEFAULT_EVAL_FREQ if args.eval_freq is None else args.eval_freq
    return EvalConfig(episodes, freq, periodic, baselines)
