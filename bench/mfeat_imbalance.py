"""Modality imbalance on MFeat: each view trained alone vs inside joint training, over seeds.

For each view set (``--views``, several allowed) and seed: every view trained by itself (its
encoder and unimodal head, the other views get no samples; same epochs, batch size and
optimiser), with its loss weighted α = 1 and, as a control, α = 0.2 (the weight its unimodal
head has inside joint training, so the gap to joint is not just a smaller head loss), and
plain joint training (every view B samples per iteration: DUS's ``uniform``).
Reports accuracy on ``--split`` (``val`` to choose defaults and views, ``test`` for the
record), mean ± std over seeds, as Markdown: per view, alone vs its unimodal head inside
joint training (the gap says how much joint training under-trains it), and the fused accuracy.
The K seeds of one setting train as one batched engine (each run is what a single run gives).

    python bench/mfeat_imbalance.py --views fac+mor pix+zer --seeds 10 --split val
    python bench/mfeat_imbalance.py --views fac+mor --split val --lr 0.01 0.05 0.1 --epochs 8 16
    python bench/mfeat_imbalance.py --views pix+zer --shift none clusters noise --seeds 20

``--shift``: the views written as ``Custom`` sets (``write_mfeat_custom``) with each test
shift, joint training, validation vs test accuracy: how far a shifted test falls below validation.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from typing import Any

import numpy as np
import torch

from mmrl_env.data.base import MultimodalDataset
from mmrl_env.data.mfeat import check_views, load_mfeat
from mmrl_env.data.mfeat_custom import write_mfeat_custom
from mmrl_env.data.npz import load_npz
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.inner_run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig
from mmrl_env.metrics import accuracy

JOINT_ALPHA = 0.2  # the joint learner's default weight of the unimodal losses


def train(data: MultimodalDataset, seeds: list[int], epochs: int, batch_size: int, lr: float,
          only: int | None = None, alpha: float = JOINT_ALPHA) -> InnerRun:
    """The seeds' runs of joint training (``only`` None) or of view ``only`` alone, its unimodal
    loss weighted ``alpha``, as one batched trainer."""
    cfg = InnerRunConfig(batch_size=batch_size, epochs=epochs, learner_kwargs={"alpha": alpha},
                        optim=OptimConfig(**{**data.optim_defaults, "lr": lr}))
    tr = InnerRun(data, cfg, len(seeds), "cpu")
    tr.reset(seeds)
    m = data.num_modalities
    tr.train(tr.total_iterations, [[batch_size if only is None or j == only else 0 for j in range(m)] for _ in seeds])
    return tr


def scores(tr: InnerRun, split: str) -> dict[str, list[float]]:
    """Accuracy per seed on ``split``: fused and each view's unimodal head."""
    pred, y = tr.predict(getattr(tr.dataset, split))
    out = {v: [accuracy(z[k], y) for k in range(tr.num_runs)] for v, z in zip(tr.dataset.modality_names,
                                                                              pred.unimodal, strict=True)}
    out["fused"] = [accuracy(pred.fused[k], y) for k in range(tr.num_runs)]
    return out


def run(views: tuple[str, ...], seeds: list[int], split: str, epochs: int, batch_size: int, lr: float,
        only: int | None = None, alpha: float = JOINT_ALPHA) -> dict[str, list[float]]:
    return scores(train(load_mfeat(views), seeds, epochs, batch_size, lr, only, alpha), split)


def cell(xs: list[float]) -> str:
    return f"{100 * np.mean(xs):.1f} ± {100 * np.std(xs):.1f}"


def report(views: tuple[str, ...], seeds: list[int], split: str, epochs: int, batch_size: int, lr: float) -> None:
    joint = run(views, seeds, split, epochs, batch_size, lr)
    print(f"\n**{'+'.join(views)}** (epochs {epochs}, B {batch_size}, lr {lr}; {split}, {len(seeds)} seeds): "
          f"joint fused {cell(joint['fused'])}")
    print("\n| view | alone (%) | alone, α = 0.2 (%) | inside joint (%) | joint − alone (points) "
          "| joint − alone α = 0.2 (points) |\n|---|---|---|---|---|---|")
    for j, v in enumerate(views):
        alone = run(views, seeds, split, epochs, batch_size, lr, only=j, alpha=1.0)[v]
        weak = run(views, seeds, split, epochs, batch_size, lr, only=j)[v]
        gaps = [100 * (np.array(joint[v]) - np.array(a)) for a in (alone, weak)]
        print(f"| {v} | {cell(alone)} | {cell(weak)} | {cell(joint[v])} | "
              + " | ".join(f"{g.mean():+.1f} ± {g.std():.1f}" for g in gaps) + " |")


def shift_report(views: tuple[str, ...], seeds: list[int], epochs: int, batch_size: int, lr: float,
                 shifts: list[str]) -> None:
    """Joint training on ``views`` written as a Custom set with each test ``shift``: validation
    vs test accuracy (a shifted test split should fall below validation)."""
    print(f"\n**{'+'.join(views)} as Custom** (epochs {epochs}, B {batch_size}, lr {lr}; {len(seeds)} seeds)\n")
    cols = ["fused", *views]
    print("| test split | " + " | ".join(f"{c} val → test (%)" for c in cols) + " | fused test − val (points) |")
    print("|---" * (len(cols) + 2) + "|")
    for shift in shifts:
        with tempfile.TemporaryDirectory() as tmp:
            data = load_npz(write_mfeat_custom(tmp, views, shift=None if shift == "none" else shift))
        tr = train(data, seeds, epochs, batch_size, lr)
        val, test = scores(tr, "val"), scores(tr, "test")
        gap = 100 * (np.array(test["fused"]) - np.array(val["fused"]))
        print(f"| {shift} (n = {len(data.test)}) | " + " | ".join(f"{cell(val[c])} → {cell(test[c])}" for c in cols)
              + f" | {gap.mean():+.1f} ± {gap.std():.1f} |")


def main(argv: Any = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--views", nargs="+", default=["fac+mor"], help="view sets, e.g. fac+mor pix+fou+mor")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--epochs", type=int, nargs="+", default=[8])
    p.add_argument("--batch-size", type=int, nargs="+", default=[64])
    p.add_argument("--lr", type=float, nargs="+", default=[0.05])
    p.add_argument("--shift", nargs="+", choices=("none", "clusters", "noise"), default=None,
                   help="instead: joint training on the views written as Custom sets with these test shifts")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seed, args.seed + args.seeds))
    for views, epochs, b, lr in itertools.product(args.views, args.epochs, args.batch_size, args.lr):
        if args.shift:
            shift_report(check_views(views), seeds, epochs, b, lr, args.shift)
        else:
            report(check_views(views), seeds, args.split, epochs, b, lr)


if __name__ == "__main__":
    main()
