"""What ``training/evaluate.py`` runs once its arguments are parsed: every policy (or inner
learner) on the same seeds, the tables, the paired comparison with the baseline, the plots.

Kept apart from the CLI's module so that ``--help`` and argparse's errors come without
importing torch, SB3, scipy and matplotlib (issue 27).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym

import mmrl_env
from mmrl_agents.factory import LEARNED
from mmrl_agents.heuristics import HEURISTICS
from mmrl_env.data import load_dataset
from mmrl_env.envs.registration import env_method, short_id, translate_data_root
from mmrl_env.inner_run.build import ENGINES
from mmrl_env.learners import LEARNERS, check_learner
from mmrl_training import learner_runs, ray_cluster
from mmrl_training.cli_errors import ENV_ERRORS, INPUT_ERRORS, UsageError, did_you_mean, message_of, usage_errors
from mmrl_training.config import DEFAULT_BASELINES, LEARNER_BASELINE, deep_merge, parse_kv
from mmrl_training.evaluation import Evaluation, Policy, display_name, evaluate
from mmrl_training.evaluation import load_run as load_run_agent
from mmrl_training.report import Record
from mmrl_training.run_config import check_applies, make_runs
from mmrl_training.run_dirs import RunLock, claim_dir, next_run_dir, remove_run_dir
from mmrl_training.validate import check_env_kwargs, check_out_dir, check_range

LEARNER_ENV_KEYS = ("epochs", "batch_size", "dataset_kwargs", "device", "engine")  # what learner_runs.run_seeds takes
OUTPUTS = ("results.md", "results.csv", "comparison.csv", "intervals.png", "val_acc.png", "actions.png", "cmd.png")


def load_run(spec: str, env_id: str, trust: bool = False) -> tuple[str, Any, dict[str, Any]]:
    """``algo:<run dir>`` -> (algo, agent, env kwargs of the run) (``mmrl_training.evaluation.load_run``),
    bad input as a :class:`UsageError`."""
    algo, _, path = spec.partition(":")
    if algo not in LEARNED:
        raise UsageError(f"unknown algo {algo!r} in {spec!r}{did_you_mean(algo, list(LEARNED))}; learned algos: "
                         f"{', '.join(LEARNED)}")
    try:
        agent, env_kwargs = load_run_agent(Path(path), env_id, algo, trust)
    except (*INPUT_ERRORS, *ENV_ERRORS) as err:
        raise UsageError(message_of(err)) from err
    return algo, agent, env_kwargs


@dataclass(frozen=True)
class ComparisonConfig:
    """Every setting of one ``evaluate.py`` invocation, checked (:meth:`from_args`): what runs
    (``names``, the baseline's row ``baseline`` among them, ``note`` when it was added), on which
    seeds and env settings, and where the results go."""

    env: str
    learners: bool  # --learners mode (inner learners without RL), else --policies
    given: str  # the --policies / --learners value as given, for messages
    names: tuple[str, ...]
    baseline: str
    note: str | None
    seeds: tuple[int, ...]
    env_kwargs: tuple[str, ...] = ()
    learner_kwargs: tuple[str, ...] = ()
    select: str | None = None
    out: Path | None = None
    overwrite: bool = False
    trust_checkpoint: bool = False
    progress: bool = True
    ray: ray_cluster.RaySettings | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ComparisonConfig:
        """``evaluate.py``'s parsed ``args``, checked concern by concern in the order they are
        reported: the only reader of the ``Namespace``."""
        check_env(args.env)
        check_range("--seeds", args.seeds, 1)
        check_range("--first-seed", args.first_seed, 0)
        check_out_dir(args.out, "--out")
        learners = args.learners is not None  # the flags are exclusive, one is required
        given = args.learners if learners else args.policies
        names, baseline, note = with_baseline(args.env, learners, given, args.baseline)
        ray = ray_cluster.settings(args.ray, args.ray_workers, "--ray applies to --policies" if learners else None)
        check_select(learners, args.select)
        return cls(args.env, learners, given, tuple(names), baseline, note,
                   tuple(args.first_seed + i for i in range(args.seeds)), tuple(args.env_kwargs),
                   tuple(args.learner_kwargs), args.select, Path(args.out) if args.out else None,
                   bool(args.overwrite), bool(args.trust_checkpoint), not args.no_progress, ray)


def check_env(env_id: str) -> None:
    if env_id not in gym.registry:
        raise UsageError(f"unknown env id {env_id!r}{did_you_mean(env_id, mmrl_env.env_ids())}; valid ids: "
                         f"{', '.join(mmrl_env.env_ids())}")


def check_select(learners: bool, select: str | None) -> None:
    if not learners and select:
        raise UsageError("--select applies to --learners (a policy's episode reports its last epoch)")


def with_baseline(env_id: str, learners: bool, given: str, baseline: str | None) -> tuple[list[str], str, str | None]:
    """The policies (or ``learners``) to run, the baseline's row name, and a note when the baseline
    was not among them and has been appended. The default baseline does no rebalancing:
    ``uniform`` on DUS envs, ``full`` (all data, no curriculum) on BSS envs, ``joint`` for learners."""
    flag = "--learners" if learners else "--policies"
    names = [n for n in given.split(",") if n]
    if not names:
        raise UsageError(f"{flag} names no {'learner' if learners else 'policy'}")
    if not learners:
        method = env_method(env_id)
        baseline = baseline or DEFAULT_BASELINES[method]
        match = [n for n in names if baseline in (n, display_name(n))]
        if match:
            return names, display_name(match[0]), None
        if ":" not in baseline and baseline not in HEURISTICS:
            raise UsageError(f"unknown --baseline {baseline!r}: a heuristic ({', '.join(HEURISTICS)}), "
                             "one of --policies or <algo>:<run dir>")
        if baseline in HEURISTICS:
            check_applies(baseline, method, "--baseline")
    else:
        baseline = baseline or LEARNER_BASELINE
        if baseline in names:
            return names, baseline, None
        if baseline not in LEARNERS:
            raise UsageError(f"unknown --baseline {baseline!r}: in --learners mode one of {', '.join(LEARNERS)}")
    note = f"--baseline {baseline} is not among {flag}: added, so every comparison is paired on the same seeds"
    return [*names, baseline], display_name(baseline), note


def check_spaces(spec: str, agent: Any, venv: Any, given: list[str]) -> None:
    """An agent scored on env settings other than its own (``--env-kwargs``) needs the same
    observation and action spaces; otherwise say which settings changed them."""
    for what in ("observation", "action"):
        have, need = getattr(venv, f"single_{what}_space"), getattr(agent, f"{what}_space")
        if have.shape != need.shape:
            raise UsageError(f"{spec}: with --env-kwargs {' '.join(given)} the env's {what} space has shape "
                             f"{have.shape}, the agent was trained on {need.shape}; drop the settings that "
                             "change it (e.g. observation extras, the number of modalities)")


def evaluate_policies(cfg: ComparisonConfig) -> Evaluation:
    """Every policy of ``cfg.names`` on ``cfg.seeds`` with the one evaluation
    (``mmrl_training.evaluation``); in Ray actors with ``cfg.ray``, else in process."""
    for spec in cfg.names:
        if ":" not in spec and spec not in HEURISTICS:
            raise UsageError(f"unknown policy {spec!r}{did_you_mean(spec, list(HEURISTICS))}; heuristics: "
                             f"{', '.join(HEURISTICS)}, "
                             f"or <algo>:<run dir> with algo in {', '.join(LEARNED)}")
        if spec in HEURISTICS:
            check_applies(spec, env_method(cfg.env), "heuristic")
    rows_named = [display_name(s) for s in cfg.names]
    if len(set(rows_named)) != len(rows_named):
        raise UsageError(f"--policies names a policy twice: {', '.join(rows_named)}")
    with usage_errors():
        overrides = parse_kv(list(cfg.env_kwargs))
    check_env_kwargs(cfg.env, overrides)
    runs = {s: load_run(s, cfg.env, cfg.trust_checkpoint) for s in cfg.names if ":" in s}
    base = deep_merge(next(iter(runs.values()))[2] if runs else {}, overrides)
    rows, spec_of = [], {}
    for spec in cfg.names:
        spec_of[display_name(spec)] = spec
        if spec in runs:
            _, agent, kwargs = runs[spec]
            rows.append(Policy(display_name(spec), deep_merge(kwargs, overrides), agent=agent))
        else:  # a heuristic (checked above), built on its own vector env
            rows.append(Policy.of_heuristic(spec, base, seed=cfg.seeds[0]))

    def check(policy: Policy, agent: Any, venv: Any) -> None:
        if policy.heuristic is None:
            check_spaces(spec_of[policy.name], agent, venv, list(cfg.env_kwargs))

    return evaluate(cfg.env, rows, cfg.seeds, cfg.baseline, partial(make_runs, ray=cfg.ray), check,
                    progress=cfg.progress)


def learner_settings(cfg: ComparisonConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--learners`` mode's env settings (those ``learner_runs.run_seeds`` takes) and per-learner
    keyword arguments, checked."""
    unknown = [n for n in cfg.names if n not in LEARNERS]
    if unknown:
        raise UsageError(f"unknown learner(s) {unknown}; valid learners: {', '.join(LEARNERS)}")
    with usage_errors():
        env_kwargs = translate_data_root(parse_kv(list(cfg.env_kwargs)))  # data_root=DIR: dataset_kwargs.root=DIR
        per_learner = parse_kv(list(cfg.learner_kwargs), "--learner-kwargs")
    bad = sorted(set(env_kwargs) - set(LEARNER_ENV_KEYS))
    if bad:
        raise UsageError(f"--learners mode takes only --env-kwargs {', '.join(LEARNER_ENV_KEYS)} and data_root; "
                         f"got {bad}")
    check_env_kwargs(cfg.env, env_kwargs)
    if env_kwargs.get("engine", "auto") not in ENGINES:
        raise UsageError(f"--env-kwargs engine={env_kwargs['engine']!r}: choose one of {', '.join(ENGINES)}")
    for name in set(per_learner) | set(cfg.names):
        try:
            check_learner(name, per_learner.get(name, {}))
        except (KeyError, ValueError) as err:
            raise UsageError(f"--learner-kwargs: {err.args[0]} (use LEARNER.KEY=VALUE)") from err
        if name not in cfg.names:
            raise UsageError(f"--learner-kwargs for {name!r}, which is not among --learners {cfg.given}")
    return env_kwargs, per_learner


def evaluate_learners(cfg: ComparisonConfig) -> Evaluation:
    """Every inner learner of ``cfg.names`` trained without RL on ``cfg.seeds`` (each learner's
    seeds as one K-run trainer), as an :class:`Evaluation` of their records."""
    env_kwargs, per_learner = learner_settings(cfg)
    dataset = short_id(cfg.env).split("-", 1)[1]
    with usage_errors():  # missing or damaged data: said before anything trains
        load_dataset(dataset, **env_kwargs.get("dataset_kwargs", {}))
    records: dict[str, list[Record]] = {}
    modalities: tuple[str, ...] = ()
    seeds = list(cfg.seeds)
    for name in cfg.names:  # each learner's seeds: one K-run trainer
        result = learner_runs.run_seeds(dataset, name, per_learner.get(name), seeds=seeds,
                                        progress=cfg.progress, select=cfg.select or "last", **env_kwargs)
        modalities = result.modalities
        records[name] = [Record(r.test, {"val_acc": [h["val_acc"] for h in r.history]}) for r in result.runs]
    return Evaluation(cfg.env, seeds, modalities, records, cfg.baseline, episodes=False)


def run(args: argparse.Namespace) -> Path:
    """``evaluate.py``'s work on its parsed ``args``: check them (:class:`ComparisonConfig`),
    claim the output directory, run every policy or learner and write the results there;
    returns the directory."""
    cfg = ComparisonConfig.from_args(args)
    ray_cluster.connect(cfg.ray)
    # the output folder is this process's from here on (a second writer is refused, not interleaved);
    # one it created is removed again if the evaluation fails (bad input leaves no directory)
    if cfg.out:
        out, made = cfg.out, claim_dir(cfg.out, "--out", OUTPUTS, cfg.overwrite)
    else:
        out, made = next_run_dir(Path("runs"), "eval", cfg.env), True
        RunLock(out)
    try:
        write_results(cfg, out)
    except BaseException:
        if made:
            remove_run_dir(out)
        raise
    finally:
        RunLock.release_dir(out)
    return out


def write_results(cfg: ComparisonConfig, out: Path) -> None:
    """Run every policy (in Ray actors with ``cfg.ray``) or learner on ``cfg.seeds``; write the
    tables and plots into ``out``."""
    result = evaluate_learners(cfg) if cfg.learners else evaluate_policies(cfg)
    # the note comes with the tables: bad input (refused inside evaluate) gets only its error line
    if cfg.note:
        print(cfg.note)
    chosen = " (each seed's best epoch on validation)" if cfg.select == "best-val" else ""
    files = result.write(out, f"{cfg.env}: {'learners' if cfg.learners else 'policies'}{chosen}")
    result.print_tables(f"{cfg.env}: {'inner learners (no RL)' if cfg.learners else 'policies'}")
    print("written:\n" + "\n".join(f"  {f}" for f in files if f is not None))
