"""Inner learners on Synthetic: joint, ogm_ge, mla, boosting (plain), and boosting driven by DUS-H / BSS-L.

    python bench/learners_synthetic.py --seeds 10                    # results: BENCHMARKS.md
    python bench/learners_synthetic.py --form raw --only joint "boosting (ω cover)" "boosting (ω one-hot)"
    python bench/learners_synthetic.py --split val --first-seed 100 --only "boosting (ω cover)" "boosting (ω one-hot)"

``--split val`` reports the final VALIDATION accuracy instead (the full validation split for the
plain rows, the env's validation subset for the env rows): the split to choose defaults on, with
seeds (``--first-seed``) other than the test table's 0..N−1 (docs/design.md, "AUG's ω target").

Plain rows train with the loop of ``training/learner_runs.py`` (what train_mml.py runs: every modality B samples per
iteration). The DUS-H and BSS-L rows run one episode of the DUS / BSS env with the
boosting learner under that heuristic policy. Data: Synthetic with its default seed 0 for
every run; the seed varies model init and sample order. The table gives mean ± std test
accuracy (fused and per modality), the paired difference of fused accuracy to ``joint`` on
the same seeds (mean and 95 % t-interval), and, for boosting, the classifier counts ACA chose.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from scipy import stats

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_agents.heuristics import HEURISTICS
from mmrl_training.learner_runs import run
from mmrl_training.rollout import run_episode

MODALITIES = ("audio", "video")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--split", choices=["test", "val"], default="test",
                   help="the accuracies reported: test (default) or the final validation accuracy (to choose on)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--form", choices=["features", "raw"], default="features", help="Synthetic's form (raw: CNNs)")
    p.add_argument("--aca-every", default="auto",
                   help="boosting's ACA period T in epochs, or 'auto' (a fifth of the run; paper: 10-20 of ~100)")
    p.add_argument("--only", nargs="*", default=None, help="run only these rows (joint always runs: the pairing)")
    p.add_argument("--out", default=None, help="write the markdown results here")
    p.add_argument("--json", default=None, help="write every row's per-seed results here (for paired comparisons "
                   "across code versions, e.g. before/after a fix: python bench/paired_json.py A B ROW)")
    return p.parse_args()


def val_metrics(info: dict[str, Any]) -> dict[str, float]:
    """The final validation accuracies (fused, per modality) of a run's last info, as ``val_<part>_acc``."""
    return {"val_fused_acc": info["val_acc"], **{f"val_{m}_acc": v for m, v in info["val_acc_modality"].items()}}


def plain(learner: str, kwargs: dict[str, Any], epochs: int, seed: int, form: str) -> dict[str, Any]:
    history: list[dict[str, Any]] = []
    metrics, trained = run("Synthetic", learner, kwargs, epochs=epochs, seed=seed, device="cpu", progress=False,
                           dataset_kwargs={"form": form}, history=history)
    return {**metrics, **val_metrics(history[-1]), **trained.run_info(0)}


def in_env(method: str, policy: str, kwargs: dict[str, Any], epochs: int, seed: int, form: str) -> dict[str, Any]:
    env = gym.make(f"{method}-Synthetic", learner="boosting", learner_kwargs=kwargs, epochs=epochs, device="cpu",
                   dataset_kwargs={"form": form}, **HEURISTICS[policy].env_kwargs)  # the settings it stands for
    agent = HEURISTICS[policy](env, seed=seed)  # built before the episode (BSS-L's env runs the learned curriculum)
    final = run_episode(agent, env, seed=seed)["final"]
    env.close()
    return {**final["test"], **val_metrics(final), "classifiers": final["classifiers"]}


PREFIX = ""  # "val_" with --split val


def paired(runs: list[dict[str, Any]], base: list[dict[str, Any]]) -> str:
    """Fused-accuracy difference to the baseline on the same seeds: mean [95 % t-interval]."""
    key = f"{PREFIX}fused_acc"
    d = 100 * (np.array([r[key] for r in runs]) - np.array([b[key] for b in base]))
    if len(d) < 2 or not d.any():
        return f"{d.mean():+.1f}"
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    return f"{d.mean():+.1f} [{lo:+.1f}, {hi:+.1f}]"


def row(name: str, runs: list[dict[str, Any]], base: list[dict[str, Any]]) -> str:
    cells = []
    for part in ("fused", *MODALITIES):
        acc = 100 * np.array([r[f"{PREFIX}{part}_acc"] for r in runs])
        cells.append(f"{acc.mean():.1f} ± {acc.std():.1f}")
    cells.append(paired(runs, base) if runs is not base else "–")
    counts = " ".join("/".join(str(r["classifiers"][m]) for m in MODALITIES) for r in runs if "classifiers" in r)
    return f"| {name} | " + " | ".join(cells) + f" | {counts or '–'} |"


def main() -> None:
    global PREFIX
    args = parse_args()
    torch.set_num_threads(1)  # the bench machine is shared
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    PREFIX = "val_" if args.split == "val" else ""
    every: int | str = int(args.aca_every) if args.aca_every != "auto" else "auto"
    boost = {"check_every": every}
    e, f = args.epochs, args.form
    configs = {
        "joint": lambda s: plain("joint", {}, e, s, f),
        "ogm_ge (published)": lambda s: plain("ogm_ge", {}, e, s, f),
        "ogm_ge (variant=joint)": lambda s: plain("ogm_ge", {"variant": "joint"}, e, s, f),
        "mla": lambda s: plain("mla", {}, e, s, f),
        "mla (project=gs, released)": lambda s: plain("mla", {"project": "gs"}, e, s, f),
        "mla (project=batch)": lambda s: plain("mla", {"project": "batch"}, e, s, f),
        "boosting (ω cover)": lambda s: plain("boosting", {**boost, "omega_target": "cover"}, e, s, f),
        "boosting (ω one-hot)": lambda s: plain("boosting", {**boost, "omega_target": "onehot"}, e, s, f),
        "boosting + DUS-H": lambda s: in_env("DUS", "dus-h", boost, e, s, f),
        "boosting + BSS-L": lambda s: in_env("BSS", "bss-l", boost, e, s, f),
    }
    if args.only:
        unknown = set(args.only) - set(configs)
        if unknown:
            raise SystemExit(f"unknown rows {sorted(unknown)}; rows: {list(configs)}")
        configs = {k: v for k, v in configs.items() if k == "joint" or k in args.only}
    lines = [f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`", "",
             f"Synthetic ({args.form}), {args.epochs} epochs, batch 64, SGD lr 0.05; boosting ACA every "
             f"T = {args.aca_every} epochs; seeds {seeds}; {'final validation' if PREFIX else 'test'} accuracy %, "
             "mean ± std over seeds; "
             "Δ fused vs joint: paired over seeds, mean [95 % t-interval].", "",
             "| learner | fused | audio | video | Δ fused vs joint | classifiers audio/video per seed |",
             "|---|---|---|---|---|---|"]
    start = time.perf_counter()
    base: list[dict[str, Any]] = []
    results: dict[str, list[dict[str, Any]]] = {}
    for name, fn in configs.items():
        t0 = time.perf_counter()
        runs = results[name] = [fn(s) for s in seeds]
        base = base or runs
        lines.append(row(name, runs, base))
        print(f"{name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    if {"boosting (ω cover)", "boosting (ω one-hot)"} <= set(results):  # the ω-target choice (docs/design.md)
        lines += ["", "Δ fused, boosting ω cover − ω one-hot (paired over seeds): "
                  + paired(results["boosting (ω cover)"], results["boosting (ω one-hot)"])]
    lines += ["", f"Wall time: {time.perf_counter() - start:.0f}s on CPU (1 thread)."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": seeds, "rows": results}, indent=1, default=float))


if __name__ == "__main__":
    main()
