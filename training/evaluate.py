"""Compare policies (or inner learners) over seeds: tables, a paired comparison and plots in one directory.

examples:
  python training/evaluate.py --env DUS-Synthetic --policies ppo:runs/ppo/DUS-Synthetic_1,dus-h,uniform
  python training/evaluate.py --env BSS-Synthetic --policies bss-h,bss-l --baseline full --seeds 10
  python training/evaluate.py --env DUS-Synthetic --learners joint,boosting,ogm_ge,mla --seeds 5

Each policy plays its seeds (default 20) as ONE K-run vector env (K = --seeds; the inner runs
train as one batched engine, agents/rollout.py run_episodes), and --learners trains each
learner's seeds as one K-run trainer (train_mml.run_seeds). Run k is seeded with seed k whatever
the policy: every policy starts from the same initial weights and data order per seed (common
random numbers, tests/test_evaluate.py), so a per-seed difference between two policies is not
blurred by the noise they share. Every policy is compared with --baseline on the same seeds
(default: no rebalancing, uniform on DUS envs, full on BSS envs, joint for --learners; added,
with a note, when not among them): the mean per-seed difference of test fused accuracy,
macro-F1 and mAP with a 95 % bootstrap interval, the probability of improvement and the
interquartile mean with its interval (agents/stats.py: scipy's percentile bootstrap, fixed seed).
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
from typing import Any

import gymnasium as gym
from rich.console import Console
from tqdm import tqdm

import mmrl_env
from agents import report, stats
from agents.checkpoint import CheckpointError, load_parameters
from agents.factory import LEARNED, make_agent
from agents.heuristics import HEURISTICS
from agents.heuristics.bss import FullDataPolicy
from agents.heuristics.generic import UniformPolicy
from agents.report import episode_record
from agents.rollout import run_episodes
from mmrl_env.data import load_dataset
from mmrl_env.engine.select import ENGINES
from mmrl_env.envs.control import control_of
from mmrl_env.envs.registration import short_id, translate_data_root, versioned_id
from mmrl_env.learners import LEARNERS, check_learner
from training import ray_cluster, train_mml
from training.cli_errors import UsageError, did_you_mean, run_cli, usage_errors
from training.config import DEFAULT_THREADS, deep_merge, parse_kv, set_threads
from training.run_config import check_applies, load_run_config, make_env, make_runs, next_run_dir
from training.run_dirs import RunLock, claim_dir, remove_run_dir
from training.validate import check_env_kwargs, check_out_dir, check_range

LEARNER_ENV_KEYS = ("epochs", "batch_size", "dataset_kwargs", "device", "engine")  # what train_mml.run_seeds takes
DEFAULT_BASELINES = {"DUS": UniformPolicy.name, "BSS": FullDataPolicy.name}  # per method: no rebalancing
LEARNER_BASELINE = "joint"  # plain joint training
OUTPUTS = ("results.md", "results.csv", "comparison.csv", "intervals.png", "val_acc.png", "actions.png", "cmd.png")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="DUS-Synthetic", metavar="ID",
                   help=f"env id, short or -v0 (default DUS-Synthetic): {', '.join(mmrl_env.env_ids())}")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--policies", metavar="A,B,...", help=f"comma-separated: heuristics ({', '.join(HEURISTICS)}) "
                      f"and/or <algo>:<run dir> with algo in {', '.join(LEARNED)}")
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
    p.add_argument("--select", choices=train_mml.SELECTIONS, default=None,
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


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    set_threads(args.threads)
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


if __name__ == "__main__":
    run_cli(main)
