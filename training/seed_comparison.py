"""What ``training/evaluate.py`` runs once its arguments are parsed: every policy (or inner
learner) on the same seeds, the tables, the paired comparison with the baseline, the plots.

Kept apart from the CLI's module so that ``--help`` and argparse's errors come without
importing torch, SB3, scipy and matplotlib (issue 27).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import gymnasium as gym
from rich.console import Console
from tqdm import tqdm

import mmrl_env
from agents import report, stats
from agents.checkpoint import CheckpointError, load_parameters
from agents.factory import LEARNED, make_agent
from agents.heuristics import HEURISTICS
from agents.report import episode_record
from agents.rollout import run_episodes
from mmrl_env.data import load_dataset
from mmrl_env.envs.control import control_of
from mmrl_env.envs.registration import short_id, translate_data_root, versioned_id
from mmrl_env.inner_run.build import ENGINES
from mmrl_env.learners import LEARNERS, check_learner
from training import ray_cluster, train_mml
from training.cli_errors import UsageError, did_you_mean, usage_errors
from training.config import DEFAULT_BASELINES, LEARNER_BASELINE, deep_merge, parse_kv
from training.run_config import check_applies, load_run_config, make_env, make_runs
from training.run_dirs import RunLock, claim_dir, next_run_dir, remove_run_dir
from training.validate import check_env_kwargs, check_out_dir, check_range

LEARNER_ENV_KEYS = ("epochs", "batch_size", "dataset_kwargs", "device", "engine")  # what train_mml.run_seeds takes
OUTPUTS = ("results.md", "results.csv", "comparison.csv", "intervals.png", "val_acc.png", "actions.png", "cmd.png")


def load_run(spec: str, env_id: str, trust: bool = False) -> tuple[str, Any, dict[str, Any]]:
    """``algo:<run dir>`` -> (algo, agent, env kwargs of the run), checked against ``env_id``.
    The agent is rebuilt from the run's config.yaml and given the tensors of model.zip only."""
    algo, _, path = spec.partition(":")
    if algo not in LEARNED:
        raise UsageError(f"unknown algo {algo!r} in {spec!r}{did_you_mean(algo, list(LEARNED))}; learned algos: "
                         f"{', '.join(LEARNED)}")
    run = Path(path)
    if not (run / "model.zip").is_file() or not (run / "config.yaml").is_file():
        raise UsageError(f"{run} has no model.zip and config.yaml: expected a finished train_agent.py run directory")
    cfg, problem = load_run_config(run / "config.yaml")
    if cfg is None:
        raise UsageError(f"{run / 'config.yaml'} is damaged ({problem}): not a usable train_agent.py run directory")
    if versioned_id(cfg["env"]) != versioned_id(env_id) or cfg["algo"] != algo:
        raise UsageError(f"{run} is a {cfg['algo']} run on {cfg['env']}, not {algo} on {env_id}")
    if trust:
        return algo, LEARNED[algo].load(run / "model.zip", device="cpu"), cfg["env_kwargs"]
    env = make_env(env_id, cfg["env_kwargs"])
    with usage_errors(f"{run}: "):
        agent = make_agent(algo, env, dict(cfg["hyperparams"]), seed=cfg["seed"], device="cpu")
    try:
        load_parameters(agent, run / "model.zip")
    except CheckpointError as err:
        raise UsageError(str(err)) from err
    env.close()
    return algo, agent, cfg["env_kwargs"]


def display_name(spec: str) -> str:
    """A policy's row name: a heuristic's name, or ``<algo>:<run dir name>``."""
    algo, sep, path = spec.partition(":")
    return f"{algo}:{Path(path).name}" if sep else spec


def with_baseline(args: argparse.Namespace) -> tuple[list[str], str, str | None]:
    """The policies (or learners) to run, the baseline's row name, and a note when the baseline
    was not among them and has been appended. The default baseline does no rebalancing:
    ``uniform`` on DUS envs, ``full`` (all data, no curriculum) on BSS envs, ``joint`` for learners."""
    flag, given = ("--policies", args.policies) if args.policies else ("--learners", args.learners)
    names = [n for n in given.split(",") if n]
    if not names:
        raise UsageError(f"{flag} names no {'policy' if args.policies else 'learner'}")
    if args.policies:
        method = args.env.split("-")[0]
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
            venv.close()
            raise UsageError(f"{spec}: with --env-kwargs {' '.join(given)} the env's {what} space has shape "
                             f"{have.shape}, the agent was trained on {need.shape}; drop the settings that "
                             "change it (e.g. observation extras, the number of modalities)")


def evaluate_policies(args: argparse.Namespace, seeds: list[int], specs: list[str]
                      ) -> tuple[dict[str, list], tuple[str, ...]]:
    for spec in specs:
        if ":" not in spec and spec not in HEURISTICS:
            raise UsageError(f"unknown policy {spec!r}{did_you_mean(spec, list(HEURISTICS))}; heuristics: "
                             f"{', '.join(HEURISTICS)}, "
                             f"or <algo>:<run dir> with algo in {', '.join(LEARNED)}")
        if spec in HEURISTICS:
            check_applies(spec, args.env.split("-")[0], "heuristic")
    with usage_errors():
        overrides = parse_kv(args.env_kwargs)
    check_env_kwargs(args.env, overrides)
    runs = {s: load_run(s, args.env, args.trust_checkpoint) for s in specs if ":" in s}
    base = deep_merge(next(iter(runs.values()))[2] if runs else {}, overrides)
    records: dict[str, list[report.Record]] = {}
    modalities: tuple[str, ...] = ()
    for spec in tqdm(specs, desc="policies", disable=args.no_progress):
        if spec in runs:
            _, agent, kwargs = runs[spec]
            kwargs = deep_merge(kwargs, overrides)
            venv = make_runs(args.env, kwargs, seeds)
            check_spaces(spec, agent, venv, args.env_kwargs)
        else:  # a heuristic (checked above)
            kwargs = deep_merge(base, HEURISTICS[spec].env_kwargs)
            venv = make_runs(args.env, kwargs, seeds)
            agent = make_agent(spec, venv, seed=seeds[0])
        modalities = control_of(venv).modalities
        records[display_name(spec)] = [episode_record(ep, modalities, report.reward_of(kwargs))
                                       for ep in run_episodes(agent, venv, seeds)]
        venv.close()
    return records, modalities


def evaluate_learners(args: argparse.Namespace, seeds: list[int], names: list[str]
                      ) -> tuple[dict[str, list], tuple[str, ...]]:
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
    records: dict[str, list[report.Record]] = {}
    modalities: tuple[str, ...] = ()
    for name in names:  # each learner's seeds: one K-run trainer
        result = train_mml.run_seeds(dataset, name, per_learner.get(name), seeds=seeds,
                                     progress=not args.no_progress, select=args.select or "last", **env_kwargs)
        modalities = result.modalities
        records[name] = [report.Record(r.test, {"val_acc": [h["val_acc"] for h in r.history]}) for r in result.runs]
    return records, modalities


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
    ray_cluster.use(args.ray, args.ray_workers, None if args.policies else "--ray applies to --policies")
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
        write_results(args, seeds, names, baseline, note, out)
    except BaseException:
        if made:
            remove_run_dir(out)
        raise
    finally:
        RunLock.release_dir(out)
    return out


def write_results(args: argparse.Namespace, seeds: list[int], names: list[str], baseline: str, note: str | None,
                  out: Path) -> None:
    """Run every policy or learner on ``seeds``; write the tables and plots into ``out``."""
    evaluate = evaluate_policies if args.policies else evaluate_learners
    records, modalities = evaluate(args, seeds, names)
    # the note comes with the tables: bad input (refused inside evaluate) gets only its error line
    if note:
        print(note)
    summary = report.summarize(records, modalities)
    comparisons = stats.compare(report.per_seed(records), baseline)  # records: the same seeds in the same order
    rewards = report.rewards_of(records)
    table = report.markdown_table(summary, modalities, len(seeds), rewards)
    paired = report.paired_markdown(comparisons, baseline, len(seeds))
    chosen = " (each seed's best epoch on validation)" if args.select == "best-val" else ""
    (out / "results.md").write_text(f"# {args.env}: {'policies' if args.policies else 'learners'}{chosen}\n\n"
                                    f"{table}\n{paired}")
    report.write_csv(out / "results.csv", summary, modalities, len(seeds))
    report.write_comparison_csv(out / "comparison.csv", comparisons, baseline)
    files = [out / "results.md", out / "results.csv", out / "comparison.csv",
             report.plot_intervals(out / "intervals.png", comparisons, baseline,
                                   f"{args.env}: test fused accuracy over {len(seeds)} seeds")]
    if args.policies:
        files += report.plot_episodes(out, records, args.env)
    else:  # learners: epoch 1 is after the first epoch
        files.append(report.plot_validation(out / "val_acc.png", records, "epoch (after)",
                                            f"{args.env}: validation accuracy", 1))
    what = "policies" if args.policies else "inner learners (no RL)"
    console = Console(width=max(120, Console().width))
    console.print(report.terminal_table(summary, modalities, len(seeds), f"{args.env}: {what}", rewards))
    console.print(report.paired_terminal(comparisons, baseline, len(seeds), args.env))
    print("written:\n" + "\n".join(f"  {f}" for f in files if f is not None))
