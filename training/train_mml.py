"""Train one inner learner WITHOUT RL, for baseline tables.

    python training/train_mml.py --dataset Synthetic --learner boosting --learner-kwargs check_every=2

Every modality gets B samples per iteration (plain joint sampling). Per epoch the
validation accuracies and the learner's ``info()`` leaves go to TensorBoard under the tags
the env wrapper uses (``step/val_acc``, ``step/val_acc_modality/<mod>``, ``step/<leaf>``);
at the end a test table (fused and per modality: acc, macro-F1, mAP) is printed.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from mmrl_env.data import dataset_names, load_dataset
from mmrl_env.envs.tensorboard import numeric_leaves
from mmrl_env.learners import check_learner
from mmrl_env.learners.base import OptimConfig
from mmrl_env.metrics import accuracy, prediction_metrics
from mmrl_env.trainer import InnerTrainer, TrainerConfig
from training.cli_errors import UsageError, run_cli, usage_errors
from training.config import parse_kv
from training.validate import _check_section, _defaults, check_device, check_finite, check_range, dataset_loader


def run(dataset: str = "Synthetic", learner: str = "joint", learner_kwargs: dict[str, Any] | None = None,
        epochs: int = 8, batch_size: int = 64, seed: int = 0, device: str = "auto", log_dir: str | None = None,
        dataset_kwargs: dict[str, Any] | None = None, progress: bool = True,
        history: list[dict[str, Any]] | None = None) -> tuple[dict[str, float], Any]:
    """Train ``learner`` for ``epochs``; return (test metrics, the trained learner). ``history``,
    when given, receives each epoch's validation accuracies and learner info (for plots)."""
    data = load_dataset(dataset, **(dataset_kwargs or {}))
    cfg = TrainerConfig(batch_size=batch_size, epochs=epochs, learner=learner,
                        learner_kwargs=dict(learner_kwargs or {}), optim=OptimConfig(**data.optim_defaults))
    trainer = InnerTrainer(data, cfg, device)
    trainer.reset(seed)
    names = data.modality_names
    sizes = [batch_size] * data.num_modalities
    writer = SummaryWriter(log_dir) if log_dir else None
    for epoch in tqdm(range(epochs), desc=f"{learner} on {dataset}", disable=not progress):
        loss = trainer.train(trainer.iterations_per_epoch, sizes)
        if writer is not None or history is not None:
            pred, y = trainer.predict(trainer.dataset.val)
            info = {"train_loss": loss.item(), "val_acc": accuracy(pred.fused, y),
                    "val_acc_modality": {n: accuracy(z, y) for n, z in zip(names, pred.unimodal, strict=True)},
                    **trainer.learner.info()}
            for tag, value in numeric_leaves(info) if writer is not None else ():
                writer.add_scalar(f"step/{tag}", value, epoch + 1)
            if history is not None:
                history.append(info)
    if writer is not None:
        writer.close()
    pred, y = trainer.predict(trainer.dataset.test)
    return prediction_metrics(pred.fused, pred.unimodal, y, names), trainer.learner


def format_table(metrics: dict[str, float], names: list[str]) -> str:
    rows = [f"{'':10s} {'acc':>7s} {'macroF1':>7s} {'mAP':>7s}"]
    for part in ["fused", *names]:
        rows.append(f"{part:10s} " + " ".join(f"{metrics[f'{part}_{k}']:7.4f}" for k in ("acc", "f1", "map")))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    a = p.parse_args(argv)
    if a.dataset not in dataset_names():
        raise UsageError(f"unknown dataset {a.dataset!r}; known datasets: {', '.join(dataset_names())}")
    for flag, value in (("--epochs", a.epochs), ("--batch-size", a.batch_size), ("--threads", a.threads)):
        check_range(flag, value, 1)
    check_range("--seed", a.seed, 0)
    check_device(a.device)
    with usage_errors():
        learner_kwargs = parse_kv(a.learner_kwargs, "--learner-kwargs")
        dataset_kwargs = parse_kv(a.dataset_kwargs, "--dataset-kwargs")
    check_finite(learner_kwargs, "--learner-kwargs")
    check_finite(dataset_kwargs, "--dataset-kwargs")
    loader = dataset_loader(a.dataset)
    if loader is not None:
        _check_section(dataset_kwargs, _defaults(loader), "", "--dataset-kwargs")
    with usage_errors():
        check_learner(a.learner, learner_kwargs)
        load_dataset(a.dataset, **dataset_kwargs)  # missing or damaged data: said before anything trains
    if a.threads:
        torch.set_num_threads(a.threads)
    metrics, learner = run(a.dataset, a.learner, learner_kwargs, a.epochs, a.batch_size, a.seed,
                           a.device, a.log_dir, dataset_kwargs)
    print(f"test metrics of {a.learner} on {a.dataset} (seed {a.seed}, {a.epochs} epochs)")
    print(format_table(metrics, list(learner.dataset.modality_names)))
    if learner.info():
        print("learner:", learner.info())


if __name__ == "__main__":
    run_cli(main)
