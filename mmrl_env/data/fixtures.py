"""Tiny raw datasets in the real on-disk formats, for tests, benchmarks and smoke runs.

Each clip's audio tone and frame colour depend on its label, so a model can learn from
them; nothing here is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from mmrl_env.extras import require


def write_wav(path: Path, label: int, seconds: float = 0.5, sample_rate: int = 16_000, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.5 * np.sin(2 * np.pi * (220.0 * (label + 1)) * t) + 0.05 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf = require("soundfile", "writing wav fixtures")
    sf.write(str(path), wave.astype(np.float32), sample_rate)


def _image(label: int, index: int, size: int | tuple[int, int]) -> np.ndarray:
    """An RGB frame of ``size`` (side, or (width, height)) coloured by label and frame index."""
    w, h = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(label * 1000 + index)
    img = rng.integers(0, 40, (h, w, 3), dtype=np.uint8)  # texture, so JPEG has real work to do
    img[..., label % 3] += np.uint8(60 + 30 * (label % 7))
    img[: h // 2, :, (index + 1) % 3] += np.uint8((40 * index) % 200)
    return img


def write_frames(directory: Path, label: int, count: int = 3, size: int | tuple[int, int] = 48) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(_image(label, i, size)).save(directory / f"frame_{i + 1:05d}.jpg", quality=90)


def write_video(path: Path, label: int, seconds: int = 3, fps: int = 5, size: int = 48,
                with_audio: bool = False, sample_rate: int = 16_000) -> None:
    """A short video via PyAV (.flv → FLV1, else MPEG-4 part 2), with an AAC tone if asked."""
    av = require("av", "writing video fixtures")

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flv" if path.suffix == ".flv" else "mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=sample_rate, layout="mono") if with_audio else None  # streams first
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(_image(label, i // fps, size), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            t = np.arange(seconds * sample_rate) / sample_rate
            wave = (0.5 * np.sin(2 * np.pi * 220.0 * (label % 8 + 1) * t)).astype(np.float32)
            for start in range(0, wave.size, 1024):
                chunk = av.AudioFrame.from_ndarray(wave[None, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = sample_rate
                out.mux(audio.encode(chunk))
            out.mux(audio.encode(None))


def write_cremad(raw: Path, rows: Iterable[tuple[str, str]], videos: Sequence[str] = (),
                 seconds: float = 0.5, size: int | tuple[int, int] = 48, frames: int = 3) -> None:
    """CREMA-D layout for ``rows`` of (clip, EMO): wav + 1-fps jpgs, or a .flv for ``videos``."""
    from mmrl_env.data.cremad import EMOTIONS

    for n, (clip, emo) in enumerate(rows):
        label = EMOTIONS.index(emo)
        write_wav(raw / "AudioWAV" / f"{clip}.wav", label, seconds, seed=n)
        if clip in videos:
            write_video(raw / "VideoFlash" / f"{clip}.flv", label, size=size if isinstance(size, int) else size[1])
        else:
            write_frames(raw / "Image-01-FPS" / clip, label, frames, size)


def real_cremad_rows(per_split: dict[str, int]) -> dict[str, list[tuple[str, str]]]:
    """The first rows of the shipped official lists, covering the classes round-robin."""
    from mmrl_env.data.cremad import EMOTIONS, SHIPPED_SPLITS

    out = {}
    for split, n in per_split.items():
        lines = (SHIPPED_SPLITS / f"{split}.csv").read_text().split()
        rows = [(clip, emotion) for clip, emotion in (line.split(",") for line in lines)]
        by_class = {e: [r for r in rows if r[1] == e] for e in EMOTIONS}
        out[split] = [by_class[EMOTIONS[i % len(EMOTIONS)]][i // len(EMOTIONS)] for i in range(n)]
    return out


def write_split_csvs(folder: Path, splits: dict[str, list[tuple[str, str]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        (folder / f"{split}.csv").write_text("".join(f"{c},{e}\n" for c, e in rows))
