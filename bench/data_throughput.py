"""Samples/s of the cached memmap path vs. decoding every item from wav + jpg (CREMA-D shapes).

Builds a CREMA-D-shaped fixture (2.5 s 16 kHz wavs, three 480×360 jpgs per clip, like
``Image-01-FPS``), prepares the cache, then times train batches (audio + augmented
frames, as the trainer asks for them) drawn from the same random indices both ways:

* cached: ``CachedSplit.gather`` reading memmap rows (float16 spectrograms, uint8 frames);
* decode: per item, read + resample the wav, STFT, decode + resize the jpgs, then the same
  conversion and augmentation.

    python bench/data_throughput.py --clips 96 --batches 6 --batch-size 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmrl_env.data.build_cache import prepare_av, process_clip
from mmrl_env.data.cache import open_cache
from mmrl_env.data.cached_split import FramesView, SpectrogramView
from mmrl_env.data.cremad import CREMAD, EMOTIONS, load_cremad
from mmrl_env.data.fixtures import write_cremad, write_split_csvs


def build(root: Path, clips: int) -> tuple[Path, float]:
    rows = [(f"{1001 + i // 60}_C{i:03d}_{EMOTIONS[i % 6]}_XX", EMOTIONS[i % 6]) for i in range(clips)]
    write_cremad(root / "raw", rows, seconds=2.5, size=(480, 360))
    write_split_csvs(root / "splits", {"train": rows, "test": rows[:6]})
    t = time.perf_counter()
    prepare_av(CREMAD, root / "raw", root / "cache", root / "splits", progress=False, log=lambda _: None)
    return root / "cache", time.perf_counter() - t


def rate(fetch: Callable[[torch.Tensor], None], batches: list[torch.Tensor]) -> float:
    fetch(batches[0])  # warm-up
    t = time.perf_counter()
    for idx in batches[1:]:
        fetch(idx)
    return sum(len(b) for b in batches[1:]) / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=96)
    p.add_argument("--batches", type=int, default=6, help="timed batches + 1 warm-up")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the decode path is single-threaded)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cache, prep_s = build(Path(tmp), args.clips)
        ds = load_cremad(root=cache, val_fraction=0.05)
        split = ds.train
        g = torch.Generator().manual_seed(0)
        batches = [torch.randperm(len(split), generator=g)[: args.batch_size] for _ in range(args.batches + 1)]
        views = [SpectrogramView(), FramesView(3, 3, 224)]
        generator = torch.Generator().manual_seed(1)
        clips = open_cache(cache).clips

        def cached(train: bool) -> Callable[[torch.Tensor], None]:
            def fetch(idx: torch.Tensor) -> None:
                for j in range(2):
                    split.gather(j, idx, train=train)
            return fetch

        def decode(train: bool) -> Callable[[torch.Tensor], None]:
            def fetch(idx: torch.Tensor) -> None:
                items = [process_clip(CREMAD, Path(tmp) / "raw", clips[r], 3, 224) for r in split.rows[idx.numpy()]]
                for j, key in enumerate(("audio", "frames")):
                    views[j](torch.from_numpy(np.stack([it[key] for it in items])), train, generator)
            return fetch

        rates = {(path, train): rate(make(train), batches)
                 for path, make in (("cached", cached), ("decode", decode)) for train in (True, False)}
    print(f"clips {args.clips}, batch {args.batch_size}, {args.batches} timed batches, torch threads {args.threads}")
    print(f"prepare (one-off): {prep_s:.1f} s = {args.clips / prep_s:.1f} clips/s\n")
    print("| batch | cached memmap (samples/s) | decode per item (samples/s) | ratio |\n|---|---|---|---|")
    for train, name in ((True, "train (crop + flip + normalise)"), (False, "eval (normalise only)")):
        c, d = rates["cached", train], rates["decode", train]
        print(f"| {name} | {c:.1f} | {d:.1f} | {c / d:.1f}x |")


if __name__ == "__main__":
    main()
