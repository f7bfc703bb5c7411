"""Inner learners on Synthetic: joint, ogm_ge, mla, boosting (plain), and boosting driven by DUS-H / BSS-L.

    python bench/learners_synthetic.py       # results: BENCHMARKS.md

Plain rows train with ``training/train_mml.py``'s loop (every modality B samples per
iteration). The DUS-H and BSS-L rows run one episode of the DUS / BSS env with the
boosting learner under that heuristic policy. Data: Synthetic with its default seed 0 for
every run; the seed varies model init and sample order. The table gives mean ± std test
accuracy (fused and per modality) and, for boosting, the classifier counts ACA chose.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mmrl_env  # noqa: F401  (registers the env ids)
from agents.heuristics import HEURISTICS
from agents.rollout import run_episode
from training.train_mml import run

MODALITIES = ("audio", "video")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--aca-every", type=int, default=2, help="boosting's ACA period T in epochs (paper: 10-20 of ~100)")
    p.add_argument("--out", default=None, help="write the markdown results here")
    return p.parse_args()


def plain(learner: str, kwargs: dict[str, Any], epochs: int, seed: int) -> dict[str, Any]:
    metrics, trained = run("Synthetic", learner, kwargs, epochs=epochs, seed=seed, device="cpu", progress=False)
    return {**metrics, **trained.info()}


def in_env(method: str, policy: str, kwargs: dict[str, Any], epochs: int, seed: int) -> dict[str, Any]:
    env = gym.make(f"{method}-Synthetic", learner="boosting", learner_kwargs=kwargs, epochs=epochs, device="cpu")
    agent = HEURISTICS[policy](env, seed=seed)  # built before the episode (BSS-L's env runs the learned curriculum)
    final = run_episode(agent, env, seed=seed)["final"]
    env.close()
    return {**final["test"], "classifiers": final["classifiers"]}


def row(name: str, runs: list[dict[str, Any]]) -> str:
    cells = []
    for part in ("fused", *MODALITIES):
        acc = 100 * np.array([r[f"{part}_acc"] for r in runs])
        cells.append(f"{acc.mean():.1f} ± {acc.std():.1f}")
    counts = " ".join("/".join(str(r["classifiers"][m]) for m in MODALITIES) for r in runs if "classifiers" in r)
    return f"| {name} | " + " | ".join(cells) + f" | {counts or '–'} |"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # the bench machine is shared
    seeds = list(range(args.seeds))
    boost = {"check_every": args.aca_every}
    configs = {
        "joint": lambda s: plain("joint", {}, args.epochs, s),
        "ogm_ge": lambda s: plain("ogm_ge", {}, args.epochs, s),
        "mla": lambda s: plain("mla", {}, args.epochs, s),
        "mla (projection)": lambda s: plain("mla", {"project": True}, args.epochs, s),
        "boosting": lambda s: plain("boosting", boost, args.epochs, s),
        "boosting + DUS-H": lambda s: in_env("DUS", "dus-h", boost, args.epochs, s),
        "boosting + BSS-L": lambda s: in_env("BSS", "bss-l", boost, args.epochs, s),
    }
    lines = [f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`", "",
             f"Synthetic (features), {args.epochs} epochs, batch 64, SGD lr 0.05; boosting ACA every "
             f"T = {args.aca_every} epochs; seeds {seeds}; test accuracy %, mean ± std over seeds.", "",
             "| learner | fused | audio | video | classifiers audio/video per seed |", "|---|---|---|---|---|"]
    start = time.perf_counter()
    for name, fn in configs.items():
        t0 = time.perf_counter()
        lines.append(row(name, [fn(s) for s in seeds]))
        print(f"{name}: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    lines += ["", f"Wall time: {time.perf_counter() - start:.0f}s on CPU (1 thread)."]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
