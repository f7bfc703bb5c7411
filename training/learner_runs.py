"""Plain runs of an inner learner over seeds, without RL: every modality B samples per
iteration (plain joint sampling), K seeds as one K-run inner run. What ``train_mml.py`` runs and
``evaluate.py --learners`` compares; a library module (torch is imported when a run starts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

# which epoch's model a run reports: the last (default, the honest protocol) or the one with the best
# validation accuracy (the releases pick the best epoch on the TEST set; never that here)
SELECTIONS = ("last", "best-val")


@dataclass
class SeedRun:
    """One seed's run: its test metrics, the learner's final info and, per epoch, the train
    loss, validation accuracies and learner info (what TensorBoard gets)."""

    seed: int
    test: dict[str, float]
    learner_info: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0  # the epoch (1-based) whose model ``test`` and ``learner_info`` are of


@dataclass
class SeedRuns:
    """The runs of ``run_seeds``, in seed order, and the inner run that ran them."""

    modalities: tuple[str, ...]
    runs: list[SeedRun]
    inner_run: Any

    def mean_std(self) -> tuple[dict[str, float], dict[str, float]]:
        """Mean and (population) std over seeds of each test metric."""
        keys = self.runs[0].test
        values = {k: np.array([r.test[k] for r in self.runs]) for k in keys}
        return {k: float(v.mean()) for k, v in values.items()}, {k: float(v.std()) for k, v in values.items()}


def run_seeds(dataset: str = "Synthetic", learner: str = "joint", learner_kwargs: dict[str, Any] | None = None,
              epochs: int = 8, batch_size: int = 64, seeds: Sequence[int] = (0,), device: str = "auto",
              log_dir: str | None = None, dataset_kwargs: dict[str, Any] | None = None, progress: bool = True,
              optim: dict[str, Any] | None = None, engine: str = "auto", select: str = "last") -> SeedRuns:
    """Train ``learner`` for ``epochs`` once per seed, all K = len(seeds) runs at once (one K-run
    inner run: the batched engine where it covers the learner and encoders, else in sequence;
    ``mmrl_env.inner_run.build``). Every modality gets B samples per iteration (plain joint
    sampling). Per epoch, one batched predict gives every run's validation accuracies.
    ``log_dir``: TensorBoard events there (one seed) or in ``log_dir/seed_<s>`` per seed.
    ``optim`` overrides fields of the dataset's default optimisation (lr, StepLR period, ...).
    ``select``: each run reports its last epoch's model (``last``) or the epoch with its best
    validation accuracy (``best-val``; the first of equals), chosen on validation only: the test
    split is predicted at an epoch that improves a run's best, and only that run's numbers are kept."""
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("run_seeds needs at least one seed")
    if select not in SELECTIONS:
        raise ValueError(f"select must be one of {SELECTIONS}, got {select!r}")
    from mmrl_env.inner_run.build import build_inner_run
    from mmrl_env.metrics import validation_scores

    inner_run = build_inner_run(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs, optim, device,
                              len(seeds), engine)
    inner_run.reset(seeds)
    names = tuple(inner_run.dataset.modality_names)
    sizes = [[batch_size] * len(names)] * len(seeds)
    runs = [SeedRun(s, {}, {}) for s in seeds]
    writers = open_writers(log_dir, seeds)
    what = f"{learner} on {dataset}" + (f" ({len(seeds)} seeds)" if len(seeds) > 1 else "")
    best = [float("-inf")] * len(seeds)
    for epoch in tqdm(range(epochs), desc=what, disable=not progress):
        loss = inner_run.train(inner_run.iterations_per_epoch, sizes).detach().cpu()
        pred, y = inner_run.predict(inner_run.dataset.val)
        scores = validation_scores(pred.fused, pred.unimodal, y, names)  # every run at once
        if select == "best-val":
            keep_improved(inner_run, runs, best, scores, epoch + 1)
        record_epoch(inner_run, runs, writers, loss, scores, epoch + 1)
    for writer in writers:
        if writer is not None:
            writer.close()
    if select == "last":
        keep_test(inner_run, runs, list(range(len(seeds))), epochs)
    return SeedRuns(names, runs, inner_run)


def open_writers(log_dir: str | None, seeds: list[int]) -> list[SummaryWriter | None]:
    """TensorBoard writers per seed: in ``log_dir`` for one seed, in ``log_dir/seed_<s>`` for
    several; none without ``log_dir``."""
    from torch.utils.tensorboard import SummaryWriter

    if not log_dir:
        return [None] * len(seeds)
    return [SummaryWriter(log_dir if len(seeds) == 1 else str(Path(log_dir) / f"seed_{s}")) for s in seeds]


def keep_improved(inner_run: Any, runs: list[SeedRun], best: list[float], scores: dict[str, Any], epoch: int) -> None:
    """``best-val``: the runs whose validation accuracy beats their ``best`` (updated) keep this
    epoch's test metrics (the first of equals stays)."""
    improved = [k for k in range(len(runs)) if float(scores["acc"][k]) > best[k]]
    for k in improved:
        best[k] = float(scores["acc"][k])
    if improved:
        keep_test(inner_run, runs, improved, epoch)


def record_epoch(inner_run: Any, runs: list[SeedRun], writers: list[SummaryWriter | None], loss: Any,
                 scores: dict[str, Any], epoch: int) -> None:
    """Each run's train loss, validation accuracies and learner info after ``epoch`` (1-based): in
    its history and, where it has a writer, as TensorBoard scalars ``step/...``."""
    from mmrl_env.envs.tensorboard import numeric_leaves

    names = tuple(inner_run.dataset.modality_names)
    for k, (run, writer) in enumerate(zip(runs, writers, strict=True)):
        info = {"train_loss": float(loss[k]), "val_acc": float(scores["acc"][k]),
                "val_acc_modality": {n: float(scores[f"acc_{n}"][k]) for n in names}, **inner_run.run_info(k)}
        run.history.append(info)
        for tag, value in numeric_leaves(info) if writer is not None else ():
            writer.add_scalar(f"step/{tag}", value, epoch)


def keep_test(inner_run: Any, runs: list[SeedRun], which: list[int], epoch: int) -> None:
    """The test metrics and learner info of runs ``which`` now, as their reported model (of ``epoch``)."""
    for k, metrics in zip(which, inner_run.evaluate(inner_run.dataset.test, which), strict=True):
        runs[k].test = metrics
        runs[k].learner_info, runs[k].epoch = inner_run.run_info(k), epoch


def run(dataset: str = "Synthetic", learner: str = "joint", learner_kwargs: dict[str, Any] | None = None,
        epochs: int = 8, batch_size: int = 64, seed: int = 0, device: str = "auto", log_dir: str | None = None,
        dataset_kwargs: dict[str, Any] | None = None, progress: bool = True,
        history: list[dict[str, Any]] | None = None, optim: dict[str, Any] | None = None, select: str = "last",
        ) -> tuple[dict[str, float], Any]:
    """One seed: ``run_seeds`` with K = 1. Returns (test metrics, the trained learner: one run, ``run_info(0)``);
    ``history``, when given, receives each epoch's validation accuracies and learner info."""
    result = run_seeds(dataset, learner, learner_kwargs, epochs, batch_size, [seed], device, log_dir, dataset_kwargs,
                       progress, optim, select=select)
    if history is not None:
        history.extend(result.runs[0].history)
    return result.runs[0].test, result.inner_run.learner
