"""The CPU smoke-test settings of docs/datasets.md ("Hardware and run time") on generated fixtures:
prepare a small raw folder in the dataset's real on-disk format, make the env with the smoke
setting (``image_size=64``, ``batch_size=8``, one epoch), take one env step; print its wall
time and the process's peak RSS. One dataset per process (peak RSS is per process).

    python bench/cpu_smoke.py /tmp/smoke ks     # Kinetics-Sounds (CREMA-D: bench/cache_memory.py)
    python bench/cpu_smoke.py /tmp/smoke nv     # NVGesture (8 frames stored)
    python bench/cpu_smoke.py /tmp/smoke tw     # Twitter2015 (ResNet50 from scratch, a tiny BERT)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import mmrl_env  # noqa: F401  (registers the ids)

ROOT = Path(__file__).resolve().parent.parent



def prepare(argv: list[str]) -> int:
    """The user's prepare command (``python -m mmrl_env.data.prepare``), as a user runs it: bench/
    runs the library in process, a CLI only as a command."""
    return subprocess.run([sys.executable, "-m", "mmrl_env.data.prepare", *argv], cwd=ROOT).returncode


SMOKE = {"image_size": 64}


def one_step(env_id: str, dataset_kwargs: dict[str, Any]) -> None:
    env = gym.make(env_id, dataset_kwargs={**dataset_kwargs, **SMOKE}, batch_size=8, epochs=1, device="cpu",
                   val_size=8)
    env.reset(seed=0)
    start = time.perf_counter()
    env.step(np.zeros(env.action_space.shape, np.float32))
    print(json.dumps({"env": env_id, "step_s": round(time.perf_counter() - start, 2),
                      "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


def kinetics(base: Path) -> None:
    from mmrl_env.data.fixtures import write_frames, write_wav
    from mmrl_env.data.kinetics import KS_SPLITS

    lines = {s: (KS_SPLITS / f"my_{s}.txt").read_text().split()[:n] for s, n in (("train", 24), ("test", 6))}
    for line in lines["train"] + lines["test"]:
        clip, _, label = line.split(",")
        write_wav(base / "ks_raw" / "audio" / f"{clip}.wav", int(label) % 8, seconds=1.0)
        write_frames(base / "ks_raw" / "frames" / clip, int(label), count=3, size=96)
    (base / "ks_splits").mkdir(exist_ok=True)
    for split, rows in lines.items():
        (base / "ks_splits" / f"my_{split}.txt").write_text("\n".join(rows) + "\n")
    assert prepare(["kinetics_sounds", "--raw", str(base / "ks_raw"), "--out", str(base / "ks"),
                    "--splits", str(base / "ks_splits"), "--quiet"]) == 0
    one_step("DUS-KineticsSounds", {"root": str(base / "ks")})


def nvgesture(base: Path) -> None:
    from mmrl_env.data.fixtures_nvgesture import write_nvgesture

    write_nvgesture(base / "nv_raw", {"train": 12, "test": 4}, size=64)
    assert prepare(["nvgesture", "--raw", str(base / "nv_raw"), "--out", str(base / "nv"), "--frames", "8",
                    "--size", "64", "--quiet", "--partial"]) == 0
    one_step("DUS-NVGesture", {"root": str(base / "nv")})


def twitter(base: Path) -> None:
    from mmrl_env.data.fixtures_image_text import TINY_BERT, write_tokenizer, write_twitter2015

    tokenizer = write_tokenizer(base / "tok")
    write_twitter2015(base / "tw_raw", {"train": 24, "dev": 8, "test": 6}, size=96)
    assert prepare(["twitter2015", "--raw", str(base / "tw_raw"), "--out", str(base / "tw"), "--tokenizer",
                    str(tokenizer), "--max-length", "32", "--quiet"]) == 0  # the tiny BERT takes 64 tokens
    one_step("DUS-Twitter2015", {"root": str(base / "tw"), "image_encoder": {"weights": None},
                                 "text_encoder": {"pretrained": False, "config": TINY_BERT}})


if __name__ == "__main__":
    torch.set_num_threads(1)
    smokes = {"ks": kinetics, "nv": nvgesture, "tw": twitter}
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="where the raw fixture and its cache are written")
    p.add_argument("dataset", choices=list(smokes))
    a = p.parse_args()
    smokes[a.dataset](a.folder)
