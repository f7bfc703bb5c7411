"""Modality imbalance on MFeat: each view trained alone vs inside joint training, over seeds.

For each view set (``--views``, several allowed) and seed: every view trained by itself (its
encoder and unimodal head, α = 1, the other views get no samples; same epochs, batch size and
optimiser) and plain joint training (every view B samples per iteration: DUS's ``uniform``).
Reports accuracy on ``--split`` (``val`` to choose defaults and views, ``test`` for the
record), mean ± std over seeds, as Markdown: per view, alone vs its unimodal head inside
joint training (the gap says how much joint training under-trains it), and the fused accuracy.
The K seeds of one setting train as one batched engine (each run is what a single run gives).

    python bench/mfeat_imbalance.py --views fac+mor pix+zer --seeds 10 --split val
    python bench/mfeat_imbalance.py --views fac+mor --split val --lr 0.01 0.05 0.1 --epochs 8 16
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import numpy as np
import torch

from mmrl_env.data.mfeat import check_views, load_mfeat
from mmrl_env.engine import VectorTrainer
from mmrl_env.learners.base import OptimConfig
from mmrl_env.metrics import accuracy
from mmrl_env.trainer import TrainerConfig


def run(views: tuple[str, ...], seeds: list[int], split: str, epochs: int, batch_size: int, lr: float,
        only: int | None = None) -> dict[str, list[float]]:
    """Accuracy per seed: fused and per view for joint training (``only`` None), or view ``only`` alone."""
    data = load_mfeat(views)
    alpha = {"alpha": 1.0} if only is not None else {}
    cfg = TrainerConfig(batch_size=batch_size, epochs=epochs, learner_kwargs=alpha,
                        optim=OptimConfig(**{**data.optim_defaults, "lr": lr}))
    tr = VectorTrainer(data, cfg, len(seeds), "cpu")
    tr.reset(seeds)
    sizes = [[batch_size if only is None or j == only else 0 for j in range(len(views))] for _ in seeds]
    tr.train(tr.total_iterations, sizes)
    pred, y = tr.predict(getattr(data, split))
    out = {v: [accuracy(pred.unimodal[j][k], y) for k in range(len(seeds))] for j, v in enumerate(views)}
    if only is None:
        out["fused"] = [accuracy(pred.fused[k], y) for k in range(len(seeds))]
    return out


def cell(xs: list[float]) -> str:
    return f"{100 * np.mean(xs):.1f} ± {100 * np.std(xs):.1f}"


def report(views: tuple[str, ...], seeds: list[int], split: str, epochs: int, batch_size: int, lr: float) -> None:
    joint = run(views, seeds, split, epochs, batch_size, lr)
    print(f"\n**{'+'.join(views)}** (epochs {epochs}, B {batch_size}, lr {lr}; {split}, {len(seeds)} seeds): "
          f"joint fused {cell(joint['fused'])}")
    print("\n| view | alone (%) | inside joint (%) | joint − alone (points) |\n|---|---|---|---|")
    for j, v in enumerate(views):
        alone = run(views, seeds, split, epochs, batch_size, lr, only=j)[v]
        gap = 100 * (np.array(joint[v]) - np.array(alone))
        print(f"| {v} | {cell(alone)} | {cell(joint[v])} | {gap.mean():+.1f} ± {gap.std():.1f} |")


def main(argv: Any = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--views", nargs="+", default=["fac+mor"], help="view sets, e.g. fac+mor pix+fou+mor")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--epochs", type=int, nargs="+", default=[8])
    p.add_argument("--batch-size", type=int, nargs="+", default=[64])
    p.add_argument("--lr", type=float, nargs="+", default=[0.05])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seed, args.seed + args.seeds))
    for views, epochs, b, lr in itertools.product(args.views, args.epochs, args.batch_size, args.lr):
        report(check_views(views), seeds, args.split, epochs, b, lr)


if __name__ == "__main__":
    main()
