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

from mmrl_env.data import dataset_names
from mmrl_env.determinism import set_deterministic
from mmrl_env.envs.tensorboard import numeric_leaves
from mmrl_env.learners import check_learner
from mmrl_env.metrics import validation_scores
from mmrl_env.trainer import build_trainer
from training.config import parse_kv


def run(dataset: str = "Synthetic", learner: str = "joint", learner_kwargs: dict[str, Any] | None = None,
        epochs: int = 8, batch_size: int = 64, seed: int = 0, device: str = "auto", log_dir: str | None = None,
        dataset_kwargs: dict[str, Any] | None = None, progress: bool = True,
        history: list[dict[str, Any]] | None = None) -> tuple[dict[str, float], Any]:
    """Train ``learner`` for ``epochs``; return (test metrics, the trained learner). ``history``,
    when given, receives each epoch's validation accuracies and learner info (for plots)."""
    trainer = build_trainer(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs, device=device)
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
    a = p.parse_args(argv)
    if a.deterministic:
        set_deterministic()
    if a.dataset not in dataset_names():
        raise SystemExit(f"unknown dataset {a.dataset!r}; known datasets: {', '.join(dataset_names())}")
    learner_kwargs = parse_kv(a.learner_kwargs)
    try:
        check_learner(a.learner, learner_kwargs)
    except (KeyError, ValueError) as err:
        raise SystemExit(err.args[0]) from err
    if a.threads:
        torch.set_num_threads(a.threads)
    metrics, learner = run(a.dataset, a.learner, learner_kwargs, a.epochs, a.batch_size, a.seed,
                           a.device, a.log_dir, parse_kv(a.dataset_kwargs))
    print(f"test metrics of {a.learner} on {a.dataset} (seed {a.seed}, {a.epochs} epochs)")
    print(format_table(metrics, list(learner.dataset.modality_names)))
    if learner.info():
        print("learner:", learner.info())


if __name__ == "__main__":
    main()
