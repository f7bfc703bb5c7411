"""Train one inner learner WITHOUT RL, for baseline tables.

examples:
  python training/train_mml.py --dataset Synthetic --learner boosting --learner-kwargs check_every=2
  python training/train_mml.py --dataset CremaD --learner ogm_ge        # data in $MMRL_DATA/cremad
  python training/train_mml.py --config configs/paper/cremad_aug.yaml   # a paper preset (docs/methods.md)
  python training/train_mml.py --config configs/paper/cremad_aug.yaml --dataset Synthetic --epochs 2
  python training/train_mml.py --learner ogm_ge --seeds 8              # seeds 0..7 as one batch: mean ± std

Every modality gets B samples per iteration (plain joint sampling). --seeds N trains seeds
S, S+1, ..., S+N-1 (S = --seed) as N runs of one batched engine (the K-run trainer). The run
directory (--log-folder/mml/<dataset>-<learner>_<n>, or --log-dir) gets the TensorBoard events
(per epoch, under the env wrapper's tags: step/val_acc, step/val_acc_modality/<modality>,
step/<learner info>; in seed_<s>/ per seed when N > 1), config.yaml, command.txt and
results.json (per seed under "runs"; one seed also as "test"/"learner_info", several also as
"test_mean"/"test_std"); the test table (fused and per modality: accuracy, macro-F1, mAP, in %;
mean ± std over seeds when N > 1) is printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from mmrl_env.data import dataset_names, load_dataset
from mmrl_env.kwargs import accepted_kwargs, check_mapping, unknown_kwargs_message
from mmrl_env.learners import LEARNERS, check_learner
from mmrl_training.cli_errors import UsageError, message_of, run_cli, usage_errors
from mmrl_training.config import DEFAULT_THREADS, deep_merge, parse_kv, read_yaml, set_threads
from mmrl_training.learner_runs import SELECTIONS, SeedRuns, run_seeds
from mmrl_training.run_dirs import (
    RunLock,
    claim_dir,
    next_run_dir,
    remove_run_dir,
    write_json_atomic,
    write_text_atomic,
)

# torch and what imports it (the trainer, metrics, TensorBoard, the value checks) are imported in the
# functions that train or check a run, so that --help and argparse's errors come fast (issue 27)

# --config: a YAML of this script's arguments (dashes as underscores) plus ``optim`` (OptimConfig fields
# over the dataset's defaults). Presets that drive an env with a policy (BSS rows) also carry ``env``
# and ``policy``; ``targets`` says which published number a preset reproduces.
CONFIG_KEYS = ("dataset", "learner", "learner_kwargs", "dataset_kwargs", "epochs", "batch_size", "seed", "seeds",
               "device", "log_dir", "threads", "optim", "select")
META_KEYS = ("targets", "env", "policy", "env_kwargs")
ENV_KEYS = ("learner", "learner_kwargs", "dataset_kwargs", "epochs", "batch_size", "optim")
# what an earlier run left in --log-dir (--overwrite removes these; config.yaml and command.txt are rewritten)
OUTPUTS = ("results.json", "events.out.tfevents.*", "seed_*/events.out.tfevents.*")


def load_config(path: str | Path) -> dict[str, Any]:
    """A ``--config`` YAML (e.g. ``configs/paper/*.yaml``); unknown keys fail with the valid ones."""
    from mmrl_env.engine.optim import OptimConfig

    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"config file {file} does not exist (paper presets live in configs/paper/)")
    with usage_errors():
        cfg = read_yaml(file)
    if not isinstance(cfg, dict):
        raise SystemExit(f"{file} must hold a mapping of train_mml arguments, got {type(cfg).__name__}")
    message = unknown_kwargs_message(cfg, CONFIG_KEYS + META_KEYS, f"key(s) in {file}", "train_mml --config")
    if message:
        raise SystemExit(message)
    with usage_errors(f"{file}: "):
        for key in ("learner_kwargs", "dataset_kwargs", "optim", "env_kwargs"):
            check_mapping(key, cfg.get(key), "{...}")
    optim_message = unknown_kwargs_message(cfg.get("optim") or {}, accepted_kwargs(OptimConfig), f"optim in {file}",
                                           "OptimConfig")
    if optim_message:
        raise SystemExit(optim_message)
    with usage_errors(f"{file}: "):
        OptimConfig(**(cfg.get("optim") or {}))  # the library's check: name, ranges
    return cfg


def env_kwargs_of(cfg: dict[str, Any]) -> dict[str, Any]:
    """The env kwargs a preset stands for (for ``train_agent.py`` / ``evaluate.py --env-kwargs``)."""
    return deep_merge({k: cfg[k] for k in ENV_KEYS if k in cfg}, cfg.get("env_kwargs") or {})


def kv_tokens(values: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"optim": {"lr": 0.01}}`` -> ``["optim.lr=0.01"]``: the KEY=VALUE form of ``--env-kwargs``."""
    out: list[str] = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out += kv_tokens(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}=" + yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n..."))
    return out


def format_table(metrics: dict[str, float], names: list[str], title: str,
                 std: dict[str, float] | None = None) -> Table:
    """Test accuracy, macro-F1 and mAP in %, fused and per modality (``std``: mean ± std cells)."""
    table = Table(title=title)
    table.add_column("")
    for header in ("acc", "macro-F1", "mAP"):
        table.add_column(f"{header} (%)", justify="right")

    def cell(key: str) -> str:
        return f"{100 * metrics[key]:.2f}" + ("" if std is None else f" ± {100 * std[key]:.2f}")

    for part in ["fused", *names]:
        table.add_row(part, *(cell(f"{part}_{k}") for k in ("acc", "f1", "map")))
    return table


def learner_summary(info: dict[str, Any]) -> str:
    """A run's final learner info (``run_info``) as ``name=value`` pairs (e.g. boosting's classifier counts)."""
    from mmrl_env.envs.tensorboard import numeric_leaves

    return ", ".join(f"{tag}={value:.4g}" for tag, value in numeric_leaves(info))


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict[str, Any]]:
    """The flags, with a ``--config`` file's values as their defaults, and that file's contents."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, metavar="YAML",
                   help="a YAML of these arguments (e.g. configs/paper/cremad_aug.yaml); flags given here override it")
    p.add_argument("--print-env-kwargs", action="store_true",
                   help="print the config's env settings as --env-kwargs tokens for train_agent.py / evaluate.py")
    p.add_argument("--dataset", default="Synthetic", help=f"dataset (default Synthetic): {', '.join(dataset_names())}")
    p.add_argument("--learner", default="joint", help=f"inner learner (default joint): {', '.join(LEARNERS)}")
    p.add_argument("--learner-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="the learner's keyword arguments, key=value or key:value, values YAML "
                   "(e.g. boosting: check_every=2; ogm_ge: alpha_ogm=0.8)")
    p.add_argument("--dataset-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="the dataset loader's keyword arguments (e.g. root=DIR, n_train=500)")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="the dataset's prepared cache (short for --dataset-kwargs root=DIR; default $MMRL_DATA/<name>)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--batch-size", type=int, default=64, help="B, samples per modality per iteration (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of model init and batch order (default 0)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="train seeds S..S+N-1 (S = --seed) as one batch and report mean ± std (default 1)")
    p.add_argument("--device", default="auto", help="auto (default: CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--select", choices=SELECTIONS, default="last",
                   help="the model each seed reports: its last epoch (default) or its epoch with the best validation "
                   "accuracy (best-val); the papers' releases pick the best epoch on the test set, never done here")
    p.add_argument("-f", "--log-folder", default="runs",
                   help="root of the run directories (default runs): <root>/mml/<dataset>-<learner>_<n>")
    p.add_argument("--log-dir", default=None, metavar="DIR",
                   help="use DIR as the run directory instead: refused while another run writes there, and when it "
                   "holds an earlier run's results (unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="with --log-dir: replace the results, config and TensorBoard events of an earlier run there")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"torch CPU threads (default {DEFAULT_THREADS}, see BENCHMARKS.md; 0 = torch's own choice)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels (slower; mmrl_env/determinism.py); CPU runs already are")
    pre, _ = p.parse_known_args(argv)
    cfg = load_config(pre.config) if pre.config else {}
    p.set_defaults(**{k: v for k, v in cfg.items() if k in CONFIG_KEYS and not isinstance(v, dict)})
    return p.parse_args(argv), cfg


@dataclass(frozen=True)
class MmlSettings:
    """What decides a run's outcome, checked (:func:`resolve_settings`): its ``config.yaml``
    (:meth:`to_dict`, keys in the order they have always had)."""

    dataset: str
    learner: str
    learner_kwargs: dict[str, Any]
    epochs: int
    batch_size: int
    seed: int
    seeds: int
    device: str
    dataset_kwargs: dict[str, Any]
    optim: dict[str, Any] | None
    deterministic: bool
    select: str

    @property
    def seed_list(self) -> list[int]:
        """The seeds trained as one batch: ``seed``, ``seed + 1``, ..., ``seeds`` of them."""
        return [self.seed + i for i in range(self.seeds)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MmlOptions:
    """How this invocation runs, not what it computes (none of it is in ``config.yaml``)."""

    log_folder: Path = Path("runs")
    log_dir: Path | None = None
    overwrite: bool = False
    threads: int | None = None
    progress: bool = True

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> MmlOptions:
        return cls(Path(a.log_folder), Path(a.log_dir) if a.log_dir else None, bool(a.overwrite), a.threads,
                   not a.no_progress)


def preset_elsewhere(config: str | None, print_env_kwargs: bool, cfg_file: dict[str, Any]) -> None:
    """``--print-env-kwargs`` (the env kwargs a preset stands for), or the way to run a preset
    that drives an env with a policy (not a learner): ``evaluate.py``."""
    if print_env_kwargs:
        if not cfg_file:
            raise SystemExit("--print-env-kwargs needs --config")
        print(" ".join(kv_tokens(env_kwargs_of(cfg_file))))
        return
    env_id, policy = cfg_file.get("env", "<env id>"), cfg_file["policy"]
    raise SystemExit(f"{config} drives the {env_id} env with the {policy!r} policy, which train_mml cannot "
                     f"run; use: python training/evaluate.py --env {env_id} --policies {policy} --env-kwargs "
                     f"$(python training/train_mml.py --config {config} --print-env-kwargs)")


def check_flags(a: argparse.Namespace) -> None:
    """The dataset's name, the counts, the device and the output directories."""
    from mmrl_training.validate import check_device, check_out_dir, check_range

    if a.dataset not in dataset_names():
        raise UsageError(f"unknown dataset {a.dataset!r}; known datasets: {', '.join(dataset_names())}")
    for flag, value in (("--epochs", a.epochs), ("--batch-size", a.batch_size)):
        check_range(flag, value, 1)
    check_range("--seed", a.seed, 0)
    check_range("--seeds", a.seeds, 1)
    check_device(a.device)
    check_out_dir(a.log_dir, "--log-dir")
    check_out_dir(a.log_folder, "-f/--log-folder")


def kwargs_of(a: argparse.Namespace, cfg_file: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The learner's and the dataset's keyword arguments: the flags over ``--config``, checked."""
    from mmrl_training.validate import check_dataset_kwargs, check_finite

    with usage_errors():
        learner_kwargs = deep_merge(cfg_file.get("learner_kwargs") or {},
                                    parse_kv(a.learner_kwargs, "--learner-kwargs"))
        dataset_kwargs = deep_merge(cfg_file.get("dataset_kwargs") or {},
                                    parse_kv(a.dataset_kwargs, "--dataset-kwargs"))
    if a.data_root is not None:
        if "root" in dataset_kwargs and str(dataset_kwargs["root"]) != a.data_root:
            raise UsageError(f"--data-root {a.data_root} contradicts --dataset-kwargs root={dataset_kwargs['root']}")
        dataset_kwargs["root"] = a.data_root
    check_finite(learner_kwargs, "--learner-kwargs")
    check_finite(dataset_kwargs, "--dataset-kwargs")
    check_dataset_kwargs(a.dataset, dataset_kwargs, "--dataset-kwargs")
    return learner_kwargs, dataset_kwargs


def resolve_settings(a: argparse.Namespace, cfg_file: dict[str, Any]) -> MmlSettings:
    """The run's settings from the flags over ``--config``, all checked (the data is loaded here once
    to check it, and again by the run): bad input is refused before the run directory exists. The
    only reader of the run's flags."""
    check_flags(a)
    learner_kwargs, dataset_kwargs = kwargs_of(a, cfg_file)
    with usage_errors():
        check_learner(a.learner, learner_kwargs)
        load_dataset(a.dataset, **dataset_kwargs)  # missing or damaged data: said before the run dir exists
    return MmlSettings(a.dataset, a.learner, learner_kwargs, a.epochs, a.batch_size, a.seed, a.seeds, a.device,
                       dataset_kwargs, cfg_file.get("optim"), bool(a.deterministic), a.select)


def main(argv: list[str] | None = None) -> Path | None:
    a, cfg_file = parse_args(argv)
    if a.print_env_kwargs or "policy" in cfg_file:
        preset_elsewhere(a.config, a.print_env_kwargs, cfg_file)
        return None
    if a.deterministic:
        from mmrl_env.determinism import set_deterministic

        set_deterministic()
    cfg, options = resolve_settings(a, cfg_file), MmlOptions.from_args(a)
    set_threads(options.threads)
    if options.log_dir:  # this process's while it runs; an earlier run's results are not replaced unasked
        run_dir = options.log_dir
        made = claim_dir(run_dir, "--log-dir", OUTPUTS, options.overwrite)
    else:  # a new numbered directory, locked the same way
        run_dir, made = next_run_dir(options.log_folder, "mml", f"{cfg.dataset}-{cfg.learner}"), True
        RunLock(run_dir)
    try:
        argv_used = sys.argv[1:] if argv is None else argv
        write_text_atomic(run_dir / "command.txt", shlex.join(["python", "training/train_mml.py", *argv_used]) + "\n")
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        print(f"run directory: {run_dir}")
        try:
            result = run_seeds(cfg.dataset, cfg.learner, cfg.learner_kwargs, cfg.epochs, cfg.batch_size,
                               cfg.seed_list, cfg.device, str(run_dir), cfg.dataset_kwargs,
                               progress=options.progress, optim=cfg.optim, select=cfg.select)
        except (FileNotFoundError, ValueError, TypeError, ImportError) as err:
            if made:  # a directory this run created is removed again when the run fails
                remove_run_dir(run_dir)
            raise UsageError(message_of(err)) from err
        report_seeds(result, run_dir, cfg)
    finally:
        RunLock.release_dir(run_dir)
    return run_dir


def report_seeds(result: SeedRuns, run_dir: Path, cfg: MmlSettings) -> None:
    """results.json (per seed, plus the one seed's or the mean/std's metrics) and the terminal table."""
    runs = result.runs
    out: dict[str, Any] = {"seeds": [r.seed for r in runs], "select": cfg.select,
                           "runs": [{"seed": r.seed, "epoch": r.epoch, "test": r.test, "learner_info": r.learner_info}
                                    for r in runs]}
    mean, std = result.mean_std()
    chosen = "" if cfg.select == "last" else ", best-val epoch " + "/".join(str(r.epoch) for r in runs)
    if len(runs) == 1:
        out.update(test=runs[0].test, learner_info=runs[0].learner_info)
        title = f"Test metrics of {cfg.learner} on {cfg.dataset} (seed {runs[0].seed}, {cfg.epochs} epochs{chosen})"
    else:
        out.update(test_mean=mean, test_std=std)
        title = (f"Test metrics of {cfg.learner} on {cfg.dataset} (mean ± std over {len(runs)} seeds "
                 f"{runs[0].seed}-{runs[-1].seed}, {cfg.epochs} epochs{chosen})")
    write_json_atomic(run_dir / "results.json", out)
    table = format_table(mean, list(result.modalities), title, std if len(runs) > 1 else None)
    Console(width=max(100, Console().width)).print(table)
    for r in runs:
        if r.learner_info:
            which = "" if len(runs) == 1 else f" (seed {r.seed})"
            print(f"learner state at the end{which}: {learner_summary(r.learner_info)}")
    print(f"saved: {run_dir}  (tensorboard --logdir {run_dir})")


def cli() -> None:
    """The console script's entry point (``[project.scripts]``), as ``python training/train_mml.py``."""
    run_cli(main)


if __name__ == "__main__":
    cli()
