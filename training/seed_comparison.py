"""What ``training/evaluate.py`` runs once its arguments are parsed: every policy (or inner
learner) on the same seeds, the tables, the paired comparison with the baseline, the plots.

Kept apart from the CLI's module so that ``--help`` and argparse's errors come without
importing torch, SB3, scipy and matplotlib (issue 27).
"""

from __future__ import annotations

import argparse
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


def with_baseline(args: argparse.Namespace) -> tuple[list[str], str, str | None]:
    """The policies (or learners) to run, the baseline's row name, and a note when the baseline
    was not among them and has been appended. The default baseline does no rebalancing:
    ``uniform`` on DUS envs, ``full`` (all data, no curriculum) on BSS envs, ``joint`` for learners."""
    flag, given = ("--policies", args.policies) if args.policies else ("--learners", args.learners)
    names = [n for n in given.split(",") if n]
    if not names:
        raise UsageError(f"{flag} names no {'policy' if args.policies else 'learner'}")
    if args.policies:
        method = env_method(args.env)
        baseline = args.baseline or DEFAULT_BASELINES[method]
        match = [n for n in names if baseline in (n, display_name(n))]
        if match:
            return names, display_name(match[0]), None
        if ":" not in baseline and baseline not in HEURISTICS:
            raise UsageError(f"unknown --baseline {baseline!r}: a heuristic ({', '.join(HEURISTICS)}), "
                             "one of --policies or <algo>:<run dir>")
        if baseline in HEURISTICS:
            check_applies(baseline, method, "--baseline")
    else:
        baseline = args.baseline or LEARNER_BASELINE
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


def evaluate_policies(args: argparse.Namespace, seeds: list[int], specs: list[str], baseline: str,
                      ray: ray_cluster.RaySettings | None = None) -> Evaluation:
    """Every policy of ``specs`` on ``seeds`` with the one evaluation (``mmrl_training.evaluation``);
    in Ray actors with ``ray``, else in process."""
    for spec in specs:
        if ":" not in spec and spec not in HEURISTICS:
            raise UsageError(f"unknown policy {spec!r}{did_you_mean(spec, list(HEURISTICS))}; heuristics: "
                             f"{', '.join(HEURISTICS)}, "
                             f"or <algo>:<run dir> with algo in {', '.join(LEARNED)}")
        if spec in HEURISTICS:
            check_applies(spec, env_method(args.env), "heuristic")
    rows_named = [display_name(s) for s in specs]
    if len(set(rows_named)) != len(rows_named):
        raise UsageError(f"--policies names a policy twice: {', '.join(rows_named)}")
    with usage_errors():
        overrides = parse_kv(args.env_kwargs)
    check_env_kwargs(args.env, overrides)
    runs = {s: load_run(s, args.env, args.trust_checkpoint) for s in specs if ":" in s}
    base = deep_merge(next(iter(runs.values()))[2] if runs else {}, overrides)
    rows, spec_of = [], {}
    for spec in specs:
        spec_of[display_name(spec)] = spec
        if spec in runs:
            _, agent, kwargs = runs[spec]
            rows.append(Policy(display_name(spec), deep_merge(kwargs, overrides), agent=agent))
        else:  # a heuristic (checked above), built on its own vector env
            rows.append(Policy.of_heuristic(spec, base, seed=seeds[0]))

    def check(policy: Policy, agent: Any, venv: Any) -> None:
        if policy.heuristic is None:
            check_spaces(spec_of[policy.name], agent, venv, args.env_kwargs)

    return evaluate(args.env, rows, seeds, baseline, partial(make_runs, ray=ray), check,
                    progress=not args.no_progress)


def evaluate_learners(args: argparse.Namespace, seeds: list[int], names: list[str], baseline: str) -> Evaluation:
    """Every inner learner of ``names`` trained without RL on ``seeds`` (each learner's seeds as
    one K-run trainer), as an :class:`Evaluation` of their records."""
    unknown = [n for n in names if n not in LEARNERS]
    if unknown:
        raise UsageError(f"unknown learner(s) {unknown}; valid learners: {', '.join(LEARNERS)}")
    with usage_errors():
        env_kwargs = translate_data_root(parse_kv(args.env_kwargs))  # data_root=DIR: dataset_kwargs.root=DIR
        per_learner = parse_kv(args.learner_kwargs, "--learner-kwargs")
    bad = sorted(set(env_kwargs) - set(LEARNER_ENV_KEYS))
    if bad:
        raise UsageError(f"--learners mode takes only --env-kwargs {', '.join(LEARNER_ENV_KEYS)} and data_root; "
                         f"got {bad}")
    check_env_kwargs(args.env, env_kwargs)
    if env_kwargs.get("engine", "auto") not in ENGINES:
        raise UsageError(f"--env-kwargs engine={env_kwargs['engine']!r}: choose one of {', '.join(ENGINES)}")
    for name in set(per_learner) | set(names):
        try:
            check_learner(name, per_learner.get(name, {}))
        except (KeyError, ValueError) as err:
            raise UsageError(f"--learner-kwargs: {err.args[0]} (use LEARNER.KEY=VALUE)") from err
        if name not in names:
            raise UsageError(f"--learner-kwargs for {name!r}, which is not among --learners {args.learners}")
    dataset = short_id(args.env).split("-", 1)[1]
    with usage_errors():  # missing or damaged data: said before anything trains
        load_dataset(dataset, **env_kwargs.get("dataset_kwargs", {}))
    records: dict[str, list[Record]] = {}
    modalities: tuple[str, ...] = ()
    for name in names:  # each learner's seeds: one K-run trainer
        result = learner_runs.run_seeds(dataset, name, per_learner.get(name), seeds=seeds,
                                        progress=not args.no_progress, select=args.select or "last", **env_kwargs)
        modalities = result.modalities
        records[name] = [Record(r.test, {"val_acc": [h["val_acc"] for h in r.history]}) for r in result.runs]
    return Evaluation(args.env, seeds, modalities, records, baseline, episodes=False)


def run(args: argparse.Namespace) -> Path:
    """``evaluate.py``'s work on its parsed ``args``: check them, claim the output directory,
    run every policy or learner and write the results there; returns the directory."""
    if args.env not in gym.registry:
        raise UsageError(f"unknown env id {args.env!r}{did_you_mean(args.env, mmrl_env.env_ids())}; valid ids: "
                         f"{', '.join(mmrl_env.env_ids())}")
    check_range("--seeds", args.seeds, 1)
    check_range("--first-seed", args.first_seed, 0)
    check_out_dir(args.out, "--out")
    seeds = [args.first_seed + i for i in range(args.seeds)]
    names, baseline, note = with_baseline(args)
    ray = ray_cluster.settings(args.ray, args.ray_workers, None if args.policies else "--ray applies to --policies")
    ray_cluster.connect(ray)
    if args.policies and args.select:
        raise UsageError("--select applies to --learners (a policy's episode reports its last epoch)")
    # the output folder is this process's from here on (a second writer is refused, not interleaved);
    # one it created is removed again if the evaluation fails (bad input leaves no directory)
    if args.out:
        out, made = Path(args.out), claim_dir(Path(args.out), "--out", OUTPUTS, args.overwrite)
    else:
        out, made = next_run_dir(Path("runs"), "eval", args.env), True
        RunLock(out)
    try:
        write_results(args, seeds, names, baseline, note, out, ray)
    except BaseException:
        if made:
            remove_run_dir(out)
        raise
    finally:
        RunLock.release_dir(out)
    return out


def write_results(args: argparse.Namespace, seeds: list[int], names: list[str], baseline: str, note: str | None,
                  out: Path, ray: ray_cluster.RaySettings | None = None) -> None:
    """Run every policy (in Ray actors with ``ray``) or learner on ``seeds``; write the tables and
    plots into ``out``."""
    if args.policies:
        result = evaluate_policies(args, seeds, names, baseline, ray)
    else:
        result = evaluate_learners(args, seeds, names, baseline)
    # the note comes with the tables: bad input (refused inside evaluate) gets only its error line
    if note:
        print(note)
    chosen = " (each seed's best epoch on validation)" if args.select == "best-val" else ""
    files = result.write(out, f"{args.env}: {'policies' if args.policies else 'learners'}{chosen}")
    result.print_tables(f"{args.env}: {'policies' if args.policies else 'inner learners (no RL)'}")
    print("written:\n" + "\n".join(f"  {f}" for f in files if f is not None))
