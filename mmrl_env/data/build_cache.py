"""Raw audio-video files → the cache, clip by clip, resumable, optionally in worker processes.

Each clip is decoded independently (``process_clip``), so workers only decode and the
main process is the single writer of the memmaps. Failures never stop the run: each is
kept with the offending file's name, reported at the end and stored in the manifest.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmrl_env.data.audio import read_audio, spectrogram
from mmrl_env.data.audio_video import AVDataset, PrepareError
from mmrl_env.data.cache import CacheWriter
from mmrl_env.data.frames import frames_from_dir, frames_from_video


def _first(raw: Path, patterns: tuple[str, ...], clip: str, is_dir: bool = False) -> Path | None:
    for p in patterns:
        path = raw / p.format(clip=clip)
        if path.is_dir() if is_dir else path.is_file():
            return path
    return None


def process_clip(ds: AVDataset, raw: Path, clip: str, n_frames: int, size: int) -> dict[str, np.ndarray]:
    """One clip from its raw files → {"audio", "frames"} (what a cache row holds).

    Raises with the offending file named. Also the decode-per-item baseline of ``bench/``.
    """
    audio = _first(raw, ds.audio, clip)
    if audio is None:
        raise FileNotFoundError("missing " + " or ".join(p.format(clip=clip) for p in ds.audio))
    try:
        audio16 = spectrogram(read_audio(audio, ds.audio_cfg.sample_rate), ds.audio_cfg).astype(np.float16)
    except Exception as err:
        raise ValueError(f"corrupt {audio.relative_to(raw)}: {err}") from err
    if not np.isfinite(audio16).all():  # NaN in the file, or beyond float16's range: would poison training
        raise ValueError(f"corrupt {audio.relative_to(raw)}: its spectrogram has NaN or infinite values")
    frame_dir, video = _first(raw, ds.frames, clip, is_dir=True), _first(raw, ds.videos, clip)
    source = frame_dir or video
    if source is None:
        raise FileNotFoundError("missing " + " or ".join(p.format(clip=clip) for p in (*ds.frames, *ds.videos)))
    try:
        frames = (frames_from_dir(source, n_frames, size) if frame_dir is not None
                  else frames_from_video(source, n_frames, size))
    except Exception as err:
        raise ValueError(f"corrupt {source.relative_to(raw)}: {err}") from err
    return {"audio": audio16, "frames": frames}


def has_raw_files(ds: AVDataset, raw: Path, clip: str) -> bool:
    """Whether ``clip``'s audio and frames (or video) exist: only such clips get cache rows."""
    return (_first(raw, ds.audio, clip) is not None
            and (_first(raw, ds.frames, clip, is_dir=True) or _first(raw, ds.videos, clip)) is not None)


def _attempt(ds: AVDataset, raw: Path, n_frames: int, size: int, clip: str) -> dict[str, np.ndarray] | str:
    """``process_clip``, with a failure turned into its message (so workers never raise)."""
    try:
        return process_clip(ds, raw, clip, n_frames, size)
    except (OSError, ValueError, RuntimeError) as err:
        return str(err)


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one decoding process per core, no oversubscription


def _results(work: Callable[[Any], Any], clips: list[Any], workers: int) -> Iterator[Any]:
    if workers <= 1:
        yield from map(work, clips)
        return
    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
        yield from pool.map(work, clips, chunksize=4)


def prepare_av(ds: AVDataset, raw: Path | str, out: Path | str, splits: Path | str | None = None,
               frames: int = 3, size: int = 224, overwrite: bool = False, progress: bool = True,
               workers: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build (or resume) the cache of ``ds`` in ``out``; returns the manifest.

    Clips already cached are skipped; every missing or corrupt file is reported by name
    and recorded in ``manifest["failed"]``. Raises :class:`PrepareError` if no clip is usable.
    """
    raw, out = Path(raw), Path(out)
    if not raw.is_dir():
        raise PrepareError(f"raw {ds.name} directory {raw} does not exist; expected layout:\n{ds.layout()}")
    rows = ds.read_splits(splits, raw)
    if not rows:
        raise PrepareError(f"the split lists name no clips ({ds.splits_help})")
    meta = {"dataset": ds.name, "clips": [r.clip for r in rows], "splits": [r.split for r in rows],
            "classes": list(ds.classes),
            "config": {"audio": ds.audio_cfg.as_dict(), "frames": {"count": frames, "size": size}}}
    arrays = {"audio": (ds.audio_cfg.shape, "float16"), "frames": ((frames, 3, size, size), "uint8")}
    present = np.array([has_raw_files(ds, raw, r.clip) for r in rows], bool)  # stat calls only: rows for these
    writer = CacheWriter(out, meta, arrays, np.array([r.label for r in rows]), overwrite, present)
    return fill_cache(ds.name, writer, [r.clip for r in rows], partial(_attempt, ds, raw, frames, size),
                      raw, ds.layout(), workers, progress, log)


def fill_cache(name: str, writer: CacheWriter, ids: list[str], attempt: Callable[[str], Any], raw: Path,
               layout: str, workers: int = 1, progress: bool = True, log: Callable[[str], None] = print,
               inputs: Sequence[Any] | None = None) -> dict[str, Any]:
    """Write every pending row ``i`` from ``attempt(inputs[i])`` (default ``inputs = ids``): a
    dict of arrays, or a failure message filed under ``ids[i]``. Shared by all datasets so
    resuming and failure reports behave the same.

    ``attempt`` must be picklable when ``workers`` > 1. Raises :class:`PrepareError` naming
    the ``raw`` directory and its expected ``layout`` if no row is usable.
    """
    pending = writer.pending()
    if len(pending) < len(ids):
        log(f"{name}: resuming, {len(ids) - len(pending)} of {len(ids)} clips already cached")
    clips = [ids[i] for i in pending]
    failed: dict[str, str] = {}
    results: Iterable[Any] = _results(attempt, clips if inputs is None else [inputs[i] for i in pending], workers)
    for i, clip, result in tqdm(zip(pending, clips, results, strict=True), total=len(clips),
                                desc=f"{name}: caching", unit="clip", disable=not progress):
        if isinstance(result, str):
            failed[clip] = result
        elif not writer.has_row(int(i)):
            failed[clip] = "its raw files appeared while prepare ran; run the same command again to cache it"
        else:
            writer.write(int(i), result)
    manifest = writer.finish(failed)
    _report(name, manifest, log)
    if manifest["written"] == 0:
        raise PrepareError(f"no usable {name} clip in {raw} ({len(failed)} failed, e.g. "
                           f"{next(iter(failed.values()), '-')}); expected layout:\n{layout}")
    return manifest


def coverage(manifest: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per split: (clips cached, clips the split lists name)."""
    failed = set(manifest["failed"])
    out: dict[str, list[int]] = {}
    for clip, split in zip(manifest["clips"], manifest["splits"], strict=True):
        counts = out.setdefault(split, [0, 0])
        counts[0] += clip not in failed
        counts[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def coverage_text(manifest: dict[str, Any]) -> str:
    return ", ".join(f"{split} {done} of {listed} ({100 * done / listed:.1f} %)"
                     for split, (done, listed) in coverage(manifest).items())


def _report(name: str, manifest: dict[str, Any], log: Callable[[str], None], shown: int = 20) -> None:
    failed = manifest["failed"]
    log(f"{name}: {manifest['written']} of {len(manifest['clips'])} clips cached, {len(failed)} failed "
        f"({coverage_text(manifest)})")
    for clip, why in list(failed.items())[:shown]:
        log(f"  {clip}: {why}")
    if len(failed) > shown:
        log(f"  ... and {len(failed) - shown} more (all listed under 'failed' in manifest.json)")


