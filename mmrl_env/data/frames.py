"""Video frames → a fixed number of evenly spaced, resized uint8 frames per clip.

Frames come either from a directory of images already extracted at 1 fps (CREMA-D's
``Image-01-FPS/<clip>/*.jpg``) or from the video itself, decoded with PyAV and sampled at
1 fps the same way. The reference loaders always take the *first* files of a clip; we take
evenly spaced ones so the frames cover the whole clip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mmrl_env.extras import require

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MIN_COVERED = 0.5  # a video whose frames cover less of its declared duration was cut short


def even_indices(available: int, wanted: int) -> np.ndarray:
    """``wanted`` indices spread evenly over ``range(available)`` (centres of equal bins).

    With fewer frames than wanted, indices repeat (a 2-frame clip gives [0, 0, 1] for 3).
    """
    if available <= 0:
        raise ValueError("no frames")
    return np.minimum(((np.arange(wanted) + 0.5) * available / wanted).astype(np.int64), available - 1)


def _to_array(img: Image.Image, size: int) -> np.ndarray:
    """(3, size, size) uint8: stored channel-first so batches need no transpose later."""
    img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def frames_from_dir(directory: Path, count: int, size: int) -> np.ndarray:
    """(count, 3, size, size) from the sorted images of ``directory``."""
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images in {directory}")
    out = []
    for i in even_indices(len(files), count):
        with Image.open(files[i]) as img:
            out.append(_to_array(img, size))
    return np.stack(out)


def frames_from_video(path: Path, count: int, size: int, fps: float = 1.0) -> np.ndarray:
    """(count, 3, size, size) from a video: first frame at or after every 1/fps seconds,
    (as a 1-fps extraction would keep), then ``count`` evenly spaced ones of those.

    A frame the decoder marks corrupt (``is_corrupt``: e.g. of a file cut short, which FFmpeg
    still "decodes" to a uniform grey picture) is not a frame of the clip: it is skipped, and
    a file with no intact frame is refused rather than cached as grey. So is a file whose
    frames cover less than :data:`MIN_COVERED` of the duration its header declares: it was
    cut short, and its first seconds would stand for the whole clip."""
    av = require("av", "decoding video frames")

    kept: list[Image.Image] = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)  # for streams without timestamps
        next_t, first_t, t, corrupt = None, 0.0, 0.0, 0
        for n, frame in enumerate(container.decode(stream)):
            if getattr(frame, "is_corrupt", False):
                corrupt += 1
                continue
            t = frame.time if frame.time is not None else n / rate
            if next_t is None:
                next_t = first_t = t
            if t + 1e-6 >= next_t:
                kept.append(frame.to_image())
                next_t += 1.0 / fps
        declared = container.duration / 1e6 if container.duration else None  # in av.time_base units
    if not kept:
        raise ValueError("no decodable video frames" + (f" ({corrupt} decoded corrupt: the file is damaged or "
                                                         "truncated)" if corrupt else ""))
    covered = t - first_t + 1.0 / rate
    if declared and covered < MIN_COVERED * declared:
        raise ValueError(f"truncated: its frames cover {covered:.1f} s of the {declared:.1f} s its header declares")
    return np.stack([_to_array(kept[i], size) for i in even_indices(len(kept), count)])
