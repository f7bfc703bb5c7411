"""Train one inner learner WITHOUT RL, for baseline tables.

    python training/train_mml.py --dataset Synthetic --learner boosting --learner-kwargs check_every=2
    python training/train_mml.py --config configs/paper/cremad_aug.yaml      # a paper preset (README)
    python training/train_mml.py --config configs/paper/cremad_aug.yaml --dataset Synthetic --epochs 2

Every modality gets B samples per iteration (plain joint sampling). Per epoch the
validation accuracies and the learner's ``info()`` leaves go to TensorBoard under the tags
the env wrapper uses (``step/val_acc``, ``step/val_acc_modality/<mod>``, ``step/<leaf>``);
at the end a test table (fused and per modality: acc, macro-F1, mAP) is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from mmrl_env.data import dataset_names
from mmrl_env.determinism import set_deterministic
from mmrl_env.envs.tensorboard import numeric_leaves
from mmrl_env.kwargs import accepted_kwargs, unknown_kwargs_message
from mmrl_env.learners import check_learner
from mmrl_env.learners.base import OptimConfig
from mmrl_env.metrics import validation_scores
from mmrl_env.trainer import build_trainer
from training.config import deep_merge, parse_kv

# --config: a YAML of this script's arguments (dashes as underscores) plus ``optim`` (OptimConfig fields
# over the dataset's defaults). Presets that drive an env with a policy (BSS rows) also carry ``env``
# and ``policy``; ``targets`` says which published number a preset reproduces.
CONFIG_KEYS = ("dataset", "learner", "learner_kwargs", "dataset_kwargs", "epochs", "batch_size", "seed", "device",
               "log_dir", "threads", "optim")
META_KEYS = ("targets", "env", "policy", "env_kwargs")
ENV_KEYS = ("learner", "learner_kwargs", "dataset_kwargs", "epochs", "batch_size", "optim")


def load_config(path: str | Path) -> dict[str, Any]:
    """A ``--config`` YAML (e.g. ``configs/paper/*.yaml``); unknown keys fail with the valid ones."""
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"config file {file} does not exist (paper presets live in configs/paper/)")
    cfg = yaml.safe_load(file.read_text()) or {}
    if not isinstance(cfg, dict):
        raise SystemExit(f"{file} must hold a mapping of train_mml arguments, got {type(cfg).__name__}")
    message = unknown_kwargs_message(cfg, CONFIG_KEYS + META_KEYS, f"key(s) in {file}", "train_mml --config")
    if message:
        raise SystemExit(message)
    optim_message = unknown_kwargs_message(cfg.get("optim") or {}, accepted_kwargs(OptimConfig), f"optim in {file}",
                                           "OptimConfig")
    if optim_message:
        raise SystemExit(optim_message)
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


def run(dataset: str = "Synthetic", learner: str = "joint", learner_kwargs: dict[str, Any] | None = None,
        epochs: int = 8, batch_size: int = 64, seed: int = 0, device: str = "auto", log_dir: str | None = None,
        dataset_kwargs: dict[str, Any] | None = None, progress: bool = True,
        history: list[dict[str, Any]] | None = None, optim: dict[str, Any] | None = None,
        ) -> tuple[dict[str, float], Any]:
    """Train ``learner`` for ``epochs``; return (test metrics, the trained learner). ``history``,
    when given, receives each epoch's validation accuracies and learner info (for plots);
    ``optim`` overrides fields of the dataset's default optimisation (lr, StepLR period, ...)."""
    trainer = build_trainer(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs, optim, device)
    trainer.reset(seed)
    names = trainer.dataset.modality_names
    sizes = [batch_size] * len(names)
    writer = SummaryWriter(log_dir) if log_dir else None
    for epoch in tqdm(range(epochs), desc=f"{learner} on {dataset}", disable=not progress):
        loss = trainer.train(trainer.iterations_per_epoch, sizes)
        if writer is not None or history is not None:
            pred, y = trainer.predict(trainer.dataset.val)
            scores = validation_scores(pred.fused, pred.unimodal, y, names)
            info = {"train_loss": loss.item(), "val_acc": scores["acc"],
                    "val_acc_modality": {n: scores[f"acc_{n}"] for n in names}, **trainer.learner.info()}
            for tag, value in numeric_leaves(info) if writer is not None else ():
                writer.add_scalar(f"step/{tag}", value, epoch + 1)
            if history is not None:
                history.append(info)
    if writer is not None:
        writer.close()
    return trainer.evaluate("test"), trainer.learner


def format_table(metrics: dict[str, float], names: list[str]) -> str:
    rows = [f"{'':10s} {'acc':>7s} {'macroF1':>7s} {'mAP':>7s}"]
    for part in ["fused", *names]:
        rows.append(f"{part:10s} " + " ".join(f"{metrics[f'{part}_{k}']:7.4f}" for k in ("acc", "f1", "map")))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=None, metavar="YAML",
                   help="a YAML of these arguments (e.g. configs/paper/cremad_aug.yaml); flags given here override it")
    p.add_argument("--print-env-kwargs", action="store_true",
                   help="print the config's env settings as --env-kwargs tokens for train_agent.py / evaluate.py")
    p.add_argument("--dataset", default="Synthetic")
    p.add_argument("--learner", default="joint")
    p.add_argument("--learner-kwargs", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--dataset-kwargs", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--log-dir", default=None, help="TensorBoard directory (default: no logging)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic CUDA kernels (slower; mmrl_env/determinism.py); CPU runs already are")
    pre, _ = p.parse_known_args(argv)
    cfg = load_config(pre.config) if pre.config else {}
    if pre.print_env_kwargs:
        if not cfg:
            raise SystemExit("--print-env-kwargs needs --config")
        print(" ".join(kv_tokens(env_kwargs_of(cfg))))
        return
    if "policy" in cfg:
        env_id, policy = cfg.get("env", "<env id>"), cfg["policy"]
        raise SystemExit(f"{pre.config} drives the {env_id} env with the {policy!r} policy, which train_mml cannot "
                         f"run; use: python training/evaluate.py --env {env_id} --policies {policy} --env-kwargs "
                         f"$(python training/train_mml.py --config {pre.config} --print-env-kwargs)")
    p.set_defaults(**{k: v for k, v in cfg.items() if k in CONFIG_KEYS and not isinstance(v, dict)})
    a = p.parse_args(argv)
    if a.deterministic:
        set_deterministic()
    if a.dataset not in dataset_names():
        raise SystemExit(f"unknown dataset {a.dataset!r}; known datasets: {', '.join(dataset_names())}")
    learner_kwargs = deep_merge(cfg.get("learner_kwargs") or {}, parse_kv(a.learner_kwargs))
    dataset_kwargs = deep_merge(cfg.get("dataset_kwargs") or {}, parse_kv(a.dataset_kwargs))
    try:
        check_learner(a.learner, learner_kwargs)
    except (KeyError, ValueError) as err:
        raise SystemExit(err.args[0]) from err
    if a.threads:
        torch.set_num_threads(a.threads)
    metrics, learner = run(a.dataset, a.learner, learner_kwargs, a.epochs, a.batch_size, a.seed,
                           a.device, a.log_dir, dataset_kwargs, optim=cfg.get("optim"))
    print(f"test metrics of {a.learner} on {a.dataset} (seed {a.seed}, {a.epochs} epochs)")
    print(format_table(metrics, list(learner.dataset.modality_names)))
    if learner.info():
        print("learner:", learner.info())


if __name__ == "__main__":
    main()
