"""Samples/s of the env, the plain trainer, the bare model step and a reference DataLoader, in one run.

Builds a CREMA-D-shaped fixture (2.5 s 16 kHz wavs, three 480×360 jpgs per clip, as
``Image-01-FPS``), prepares it with ``python -m mmrl_env.data.prepare cremad --workers N``, then
on ``DUS-CremaD`` (``resident=True``, joint learner, ResNet18 ×2; bf16 autocast on CUDA; the
engine keeps the contiguous memory format, see ``mmrl_env.engine.stack``) measures (issue 13):

1. **env step**: ``env.step`` (½ epoch of updates, the CMD, a validation pass) — samples/s;
2. **plain trainer loop**: the env's inner trainer (``InnerRun``, one run) ``train`` alone;
3. **bare train_step**: ``learner.train_step`` on batches already made and on the device;
4. **reference pipeline**: a ``DataLoader`` whose workers decode wav + jpg per item
   (``build_cache.process_clip``) and augment on the CPU (torchvision per clip), then the same
   ``train_step``;

and also ``InnerRun.make_batch`` vs ``train_step`` time, the validation pass, the train-batch video
augmentation old (per-clip torchvision loop, as before issue 13) vs new
(``mmrl_env.data.augment``, ``auto`` and ``batched``), and the pixel difference of the batched
crop against torchvision's on a fixed box. Prints a Markdown report (and writes ``--out``).

    python bench/gpu_throughput.py                                   # H100 sizes (B 64, 224², 1280 clips)
    python bench/gpu_throughput.py --device cpu --clips 96 --batch-size 8 --image-size 96 \
        --steps 2 --iters 3 --loader-workers 2                        # small, on a CPU
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torchvision
from timing import sync
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

import mmrl_env  # noqa: F401  (registers the envs)
from mmrl_env.data import prepare
from mmrl_env.data.augment import crop_rois, random_resized_crop_flip, resized_crop
from mmrl_env.data.build_cache import process_clip
from mmrl_env.data.cache import open_cache
from mmrl_env.data.cached_split import IMAGENET_MEAN, IMAGENET_STD, FramesView
from mmrl_env.data.cremad import CREMAD, EMOTIONS
from mmrl_env.data.fixtures import write_cremad, write_split_csvs
from mmrl_env.engine.batch import VectorBatch, prefix_masks
from mmrl_env.inner_run.settings import resolve_device


def build_fixture(root: Path, clips: int, size: int, workers: int) -> tuple[Path, Path, float]:
    """Raw CREMA-D layout + split lists (10 % test), prepared with ``--workers``; returns raw, cache, seconds."""
    rows = [(f"{1001 + i // 60}_C{i:03d}_{EMOTIONS[i % 6]}_XX", EMOTIONS[i % 6]) for i in range(clips)]
    write_cremad(root / "raw", rows, seconds=2.5, size=(480, 360))
    n_test = max(6, clips // 10)
    write_split_csvs(root / "splits", {"train": rows[n_test:], "test": rows[:n_test]})
    t = time.perf_counter()
    code = prepare.main(["cremad", "--raw", str(root / "raw"), "--out", str(root / "cache"), "--splits",
                         str(root / "splits"), "--size", str(size), "--workers", str(workers), "--quiet"])
    if code:
        raise SystemExit("prepare failed")
    return root / "raw", root / "cache", time.perf_counter() - t


def per_call(fn: Callable[[int], object], n: int, device: torch.device, warmup: int = 1) -> float:
    """Seconds per call of ``fn(i)`` over ``n`` calls after ``warmup`` ones, synchronised at both ends."""
    for i in range(warmup):
        fn(i)
    sync(device)
    t = time.perf_counter()
    for i in range(n):
        fn(i)
    sync(device)
    return (time.perf_counter() - t) / n


class OldFramesAugment:
    """The train path of ``FramesView`` before issue 13, verbatim: torchvision per clip, drawing
    from the global RNG forked and seeded from a private generator."""

    def __init__(self, size: int) -> None:
        self.augment = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])
        self.generator = torch.Generator().manual_seed(0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            x = torch.stack([self.augment(clip) for clip in x])
        x = v2.functional.to_dtype(x, torch.float32, scale=True)
        return v2.functional.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD), inplace=True)


def old_eval(x: torch.Tensor) -> torch.Tensor:
    """The eval path of ``FramesView`` before issue 13 (stored size = image size: no resize)."""
    x = v2.functional.to_dtype(x, torch.float32, scale=True)
    return v2.functional.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD), inplace=True)


def augment_rows(raw_video: torch.Tensor, size: int, iters: int, device: torch.device) -> dict[str, float]:
    """Seconds per batch of the video view: train (old per-clip loop, new auto, new batched) and eval."""
    view, old = FramesView(3, 3, size), OldFramesAugment(size)
    g = torch.Generator().manual_seed(0)
    return {"train, old: torchvision per clip": per_call(lambda _: old(raw_video), iters, device),
            "train, new: auto": per_call(lambda _: view(raw_video, True, g), iters, device),
            "train, new: batched (roi_align)": per_call(
                lambda _: view.normalize(random_resized_crop_flip(raw_video, size, g, backend="batched")),
                iters, device),
            "eval, old: to_dtype + normalize": per_call(lambda _: old_eval(raw_video), iters, device),
            "eval, new": per_call(lambda _: view(raw_video, False), iters, device)}


class DecodeEveryItem(Dataset):
    """The reference-style pipeline: wav + jpgs decoded per item, augmented on the CPU per clip."""

    def __init__(self, raw: Path, clips: list[str], labels: np.ndarray, stored: int, size: int) -> None:
        self.raw, self.clips, self.labels, self.stored = raw, clips, labels, stored
        self.augment = v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        item = process_clip(CREMAD, self.raw, self.clips[i], 3, self.stored)
        frames = v2.functional.to_dtype(self.augment(torch.from_numpy(item["frames"])), torch.float32, scale=True)
        frames = v2.functional.normalize(frames, list(IMAGENET_MEAN), list(IMAGENET_STD))
        return torch.from_numpy(item["audio"]).float()[None], frames, int(self.labels[i])


def reference_rate(raw: Path, cache: Path, learner, args: argparse.Namespace, device: torch.device) -> float:
    """Samples/s of DataLoader(workers decode + CPU augment) → device → ``train_step``."""
    c = open_cache(cache)
    rows = c.rows("train")
    data = DecodeEveryItem(raw, [c.clips[r] for r in rows], c.labels[rows], args.image_size,
                           args.image_size)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, num_workers=args.loader_workers,
                        pin_memory=device.type == "cuda", drop_last=True, persistent_workers=args.loader_workers > 0,
                        generator=torch.Generator().manual_seed(0))
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    b = args.batch_size
    host_sizes = torch.tensor([[b, b]])  # one run, every row of both modalities
    sizes, masks = host_sizes.to(device), prefix_masks(host_sizes, b).to(device)
    windows = torch.zeros(1, b, dtype=torch.long, device=device)  # the loader's rows have no split index

    def step(_: int) -> None:
        audio, frames, y = next(batches)
        audio, frames = audio.to(device, non_blocking=True), frames.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        learner.train_step(VectorBatch(windows, [audio[None], frames[None]], y[None], sizes, masks, b,
                                       host_sizes=host_sizes))

    return b / per_call(step, args.iters, device, warmup=2)


def pixel_check(frame: torch.Tensor, size: int) -> list[tuple[str, float, float, float]]:
    """Batched crop vs torchvision per clip on fixed boxes (grey levels, 0–255): mean, max, max
    away from the crop's border; for an upscale (as at the default sizes) and a 2× downscale."""
    side = frame.shape[-1]
    cases = [("upscale: box 0.66·S × 0.75·S → S", (side // 8, side // 7, round(0.66 * side), round(0.75 * side)), size),
             ("downscale: whole frame → S/2", (0, 0, side, side), size // 2)]
    out = []
    for name, (top, left, h, w), s in cases:
        ref = v2.functional.resized_crop(frame, top, left, h, w, [s, s], antialias=True).float()
        ours = resized_crop(frame[None].float(), crop_rois(torch.tensor([[top, left, h, w]])), s)[0]
        diff = (ours - ref).abs()
        m = math.ceil(s / min(h, w)) + 1
        out.append((name, float(diff.mean()), float(diff.max()), float(diff[:, m:-m, m:-m].max())))
    return out


def augment_table(aug: dict[str, float], pixels: list[tuple[str, float, float, float]]) -> list[str]:
    old = {"train": aug["train, old: torchvision per clip"], "eval": aug["eval, old: to_dtype + normalize"]}
    return ["| video view of one batch (B × 3 frames) | ms per batch | old / this |", "|---|---|---|",
            *(f"| {k} | {1e3 * v:.2f} | {old[k.split(',')[0]] / v:.2f}× |" for k, v in aug.items()), "",
            "| batched crop vs torchvision per clip, fixed box (grey levels) | mean abs | max abs | max abs inside |",
            "|---|---|---|---|",
            *(f"| {name} | {mean:.3f} | {mx:.2f} | {inner:.2f} |" for name, mean, mx, inner in pixels)]


def augment_only(cache: Path, args: argparse.Namespace, device: torch.device, header: list[str]) -> list[str]:
    """``--augment-only``: the video view's rows at full batch and frame sizes, no model."""
    from mmrl_env.data.cremad import load_cremad

    split = load_cremad(root=cache, resident=True, image_size=args.image_size, device=str(device)).train
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[: args.batch_size].to(device)
    raw_video = split._raw(1, idx)
    aug = augment_rows(raw_video, args.image_size, args.iters, device)
    return [*header, "", *augment_table(aug, pixel_check(raw_video[0, 0].cpu(), args.image_size))]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--clips", type=int, default=1280, help="fixture clips (10 %% test, 10 %% of train validation)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=224, help="stored and model frame side")
    p.add_argument("--steps", type=int, default=4, help="timed env steps (each ½ epoch)")
    p.add_argument("--iters", type=int, default=20, help="timed calls of the other rows")
    p.add_argument("--prepare-workers", type=int, default=8)
    p.add_argument("--loader-workers", type=int, default=8, help="DataLoader workers of the reference pipeline")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", default=None, help="also write the Markdown report here")
    p.add_argument("--augment-only", action="store_true",
                   help="only the video view's rows (train augmentation and eval conversion, old vs new), no model")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    b = args.batch_size
    command = " ".join(["python bench/gpu_throughput.py", *(argv if argv is not None else sys.argv[1:])])
    with tempfile.TemporaryDirectory() as tmp:
        raw, cache, prep_s = build_fixture(Path(tmp), args.clips, args.image_size, args.prepare_workers)
        header = [f"## GPU throughput — {device_name(device)}", "", f"`{command}`", "",
                  f"torch {torch.__version__}, torchvision {torchvision.__version__}, Python "
                  f"{platform.python_version()}; CREMA-D-shaped fixture of {args.clips} clips (prepared in "
                  f"{prep_s:.1f} s with --workers {args.prepare_workers}), B = {b}, {args.image_size}² frames ×3."]
        if args.augment_only:
            return finish(augment_only(cache, args, device, header), args.out)
        env = gym.make("DUS-CremaD", dataset_kwargs={"root": str(cache), "resident": True,
                                                     "image_size": args.image_size},
                       batch_size=b, epochs=10_000, device=str(device))
        u = env.unwrapped
        tr, action = u.inner_run, np.zeros(env.action_space.shape, np.float32)
        env.reset(seed=0)

        # 1. env step (½ epoch of updates + CMD + validation pass)
        before = int(tr.iteration[0])
        env_s = per_call(lambda _: env.step(action), args.steps, device)
        iters_per_step = (int(tr.iteration[0]) - before) / (args.steps + 1)
        env_rate = iters_per_step * b / env_s
        # 2. plain trainer loop
        plain_rate = b / per_call(lambda _: tr.train(1, [[b, b]]), args.iters, device)
        # make_batch alone, and 3. bare train_step on batches already on the device
        sizes = torch.tensor([[b, b]])
        windows = [tr.streams[0].next_window(b, b) for _ in range(args.iters + 1)]
        make_s = per_call(lambda i: tr.make_batch([windows[i % len(windows)]], sizes), args.iters, device)
        batches = [tr.make_batch([windows[i]], sizes) for i in range(min(4, len(windows)))]
        step_s = per_call(lambda i: tr.learner.train_step(batches[i % len(batches)]), args.iters, device)
        # validation pass (what every env step adds: the reward's prediction on the fixed subset)
        reward = u.runs.reward
        val_s = per_call(lambda _: reward.measure(tr), args.iters, device)
        n_val = len(reward.idx)
        # video augmentation of one train batch: old per-clip loop vs new
        raw_video = tr.dataset.train._raw(1, windows[0])
        aug = augment_rows(raw_video, args.image_size, args.iters, device)
        pixels = pixel_check(raw_video[0, 0].cpu(), args.image_size)
        # 4. reference DataLoader pipeline (same learner)
        ref_rate = reference_rate(raw, cache, tr.learner, args, device)
        env.close()

    bare_rate = b / step_s
    lines = [
        *header,
        f"`DUS-CremaD` resident, joint learner, ResNet18 ×2, "
        f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}; "
        f"{args.steps} env steps of {iters_per_step:.0f} updates, {args.iters} calls per other row.",
        "",
        "| path | samples/s | ratio to bare train_step |",
        "|---|---|---|",
        f"| env step (updates + CMD + validation of {n_val}) | {env_rate:,.1f} | {env_rate / bare_rate:.2f} |",
        f"| plain trainer loop (`InnerRun.train`, one run) | {plain_rate:,.1f} | {plain_rate / bare_rate:.2f} |",
        f"| bare `learner.train_step`, batches on the device | {bare_rate:,.1f} | 1.00 |",
        f"| reference: DataLoader, {args.loader_workers} workers decoding wav + jpg per item, CPU augmentation "
        f"| {ref_rate:,.1f} | {ref_rate / bare_rate:.2f} |",
        "",
        f"- env step / reference pipeline: **{env_rate / ref_rate:.2f}×**; env step / bare train_step: "
        f"**{env_rate / bare_rate:.2f}**",
        f"- `make_batch` {1e3 * make_s:.1f} ms vs `train_step` {1e3 * step_s:.1f} ms per batch: "
        f"**{make_s / step_s:.1%}** of train_step",
        f"- validation pass: {1e3 * val_s:.1f} ms for {n_val} samples "
        f"({val_s / (iters_per_step * step_s):.1%} of a step's {iters_per_step:.0f} train_steps)",
        "",
        *augment_table(aug, pixels),
    ]
    return finish(lines, args.out)


def finish(lines: list[str], out: str | None) -> str:
    report = "\n".join(lines)
    print(report)
    if out:
        Path(out).write_text(report + "\n")
    return report


if __name__ == "__main__":
    main()
