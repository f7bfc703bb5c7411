"""Where the seed-to-seed spread comes from: model initialisation, data order, validation subset.

    python bench/seed_noise.py                          # Synthetic features, 8 x 8 runs
    python bench/seed_noise.py --form raw --grid 5      # the small-CNN path, 5 x 5 runs

A crossed design: every one of ``--grid`` initialisation seeds is trained with every one of
``--grid`` data-order seeds (``InnerRun.reset(seeds, order_seeds=...)``), all runs as one
K-run batch of plain joint training (the ``uniform`` policy's inner run). The fused test
accuracies form a (init × order) table; a two-way random-effects ANOVA without replication
splits their variance into an init component, an order component and the rest (their
interaction: how init and order combine, which neither seed alone predicts).

The validation subset: the env's reward is measured on the first ``val_size`` validation
samples. For the trained models, the bench draws ``--subsets`` random subsets of each size v
and reports the standard deviation of the accuracy *difference* between two models on the same
subset (what the reward has to rank), next to the full-split difference it estimates; both
divided by the finite-population factor √(1 − v/N), so they stand for v fresh samples.
Results: BENCHMARKS.md ("Seed noise").
"""

from __future__ import annotations

import argparse
import shlex
import sys

import numpy as np
import torch

from mmrl_env.inner_run.build import build_inner_run


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--form", choices=["features", "raw"], default="features", help="Synthetic form")
    p.add_argument("--grid", type=int, default=8, help="init seeds = order seeds = GRID (GRID² runs)")
    p.add_argument("--epochs", type=int, default=8, help="inner run length (DUS-Synthetic's default: 8)")
    p.add_argument("--n-val", type=int, default=4000,
                   help="Synthetic validation split size (default 4000: subsets of it approximate fresh samples)")
    p.add_argument("--val-sizes", type=int, nargs="*", default=[100, 250, 500, 1000], help="subset sizes v")
    p.add_argument("--subsets", type=int, default=2000, help="random subsets per size")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def two_way_components(table: np.ndarray) -> dict[str, float]:
    """Random-effects ANOVA of an (a × b) table with one value per cell: variance components of
    rows (init), columns (order) and the residual (interaction + noise), clipped at 0."""
    a, b = table.shape
    grand = table.mean()
    ms_rows = b * ((table.mean(1) - grand) ** 2).sum() / (a - 1)
    ms_cols = a * ((table.mean(0) - grand) ** 2).sum() / (b - 1)
    resid = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + grand
    ms_res = (resid**2).sum() / ((a - 1) * (b - 1))
    return {"init": max(0.0, (ms_rows - ms_res) / b), "order": max(0.0, (ms_cols - ms_res) / a),
            "interaction": ms_res, "total": table.var(ddof=1)}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    g = args.grid
    inits = [1000 + i for i in range(g) for _ in range(g)]
    orders = [5000 + j for _ in range(g) for j in range(g)]
    trainer = build_inner_run("Synthetic", {"form": args.form, "n_val": args.n_val}, "joint", None, 64,
                                args.epochs, None, "cpu", g * g)
    trainer.reset(inits, order_seeds=orders)
    b, m = trainer.cfg.batch_size, trainer.dataset.num_modalities
    trainer.train(trainer.total_iterations, [[b] * m] * (g * g))
    pred, y = trainer.predict(trainer.dataset.test)
    test_acc = (pred.fused.argmax(-1) == y).double().mean(-1).cpu().numpy().reshape(g, g)
    comp = two_way_components(100 * test_acc)
    print(f"$ python {shlex.join(sys.argv)}\n")
    print(f"Synthetic form={args.form}: {g}x{g} runs, fused test accuracy {100 * test_acc.mean():.2f} %\n")
    print("| source | variance (points²) | std (points) | share |\n|---|---|---|---|")
    parts = ("init", "order", "interaction")
    total = sum(comp[k] for k in parts)
    for k in parts:
        print(f"| {k} | {comp[k]:.2f} | {comp[k] ** 0.5:.2f} | {comp[k] / total:.0%} |")
    print(f"| all seeds (sample variance) | {comp['total']:.2f} | {comp['total'] ** 0.5:.2f} | |\n")

    vpred, vy = trainer.predict(trainer.dataset.val)
    correct = (vpred.fused.argmax(-1) == vy).double().cpu().numpy()  # (runs, n_val)
    rng = np.random.default_rng(0)
    pairs = rng.choice(g * g, size=(64, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    full = 100 * (correct[pairs[:, 0]].mean(1) - correct[pairs[:, 1]].mean(1))
    print(f"validation subsets ({len(pairs)} random model pairs; |Δ| on the full {len(vy)}-sample split: "
          f"median {np.median(np.abs(full)):.2f} points)\n")
    print("| v | std of one model's accuracy | std of a pair's Δ (same subset) |\n|---|---|---|")  # per v fresh samples
    n_val = len(vy)
    for v in [v for v in args.val_sizes if v < n_val] + [n_val]:
        if v == n_val:
            print(f"| {v} (all) | 0 (fixed) | 0 (fixed) |")
            continue
        idx = np.stack([rng.choice(n_val, v, replace=False) for _ in range(args.subsets)])  # (S, v)
        acc = 100 * correct[:, idx].mean(-1)  # (runs, S)
        delta = acc[pairs[:, 0]] - acc[pairs[:, 1]]  # (pairs, S)
        fpc = (1 - v / n_val) ** 0.5  # subsets of a finite split vary less than fresh samples would
        print(f"| {v} | {acc.std(1).mean() / fpc:.2f} | {delta.std(1).mean() / fpc:.2f} |")


if __name__ == "__main__":
    main()
