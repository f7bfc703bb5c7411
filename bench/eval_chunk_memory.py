"""Peak RSS of one prediction pass over a CREMA-D cache at 224 px (ResNet18 ×2, one run, one
thread), with all clips in one chunk (``1024``, the old behaviour for any split up to 1,024
clips) or with the size-capped chunk (``auto``: ``InnerRun.eval_chunk``). One process per
setting; make a cache first (e.g. ``bench/cache_memory.py``'s fixture, or
``python -m mmrl_env.data.prepare cremad --raw RAW --out CACHE --splits SPLITS``).

    python bench/eval_chunk_memory.py /tmp/c64/cache 1024
    python bench/eval_chunk_memory.py /tmp/c64/cache auto
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from mmrl_env.data.cremad import load_cremad
from mmrl_env.inner_run.run import InnerRun
from mmrl_env.inner_run.settings import InnerRunConfig


def main(root: str, chunk: str) -> None:
    torch.set_num_threads(1)
    data = load_cremad(root=root)
    trainer = InnerRun(data, InnerRunConfig(), num_runs=1, device="cpu")
    trainer.reset([0])
    if chunk != "auto":
        trainer._eval_chunk = int(chunk)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    trainer.predict(data.train)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"| {trainer.eval_chunk(data.train)} | {len(data.train)} | {before:.0f} | {after:.0f} | "
          f"{time.perf_counter() - start:.1f} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="a prepared CREMA-D cache")
    p.add_argument("chunk", help="samples per chunk, or auto (InnerRun.eval_chunk)")
    a = p.parse_args()
    main(a.root, a.chunk)
