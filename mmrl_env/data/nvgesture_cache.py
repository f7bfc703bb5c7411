"""NVGesture raw videos → the cache: T evenly spaced frames of the gesture, RGB + flow + depth.

Per clip: decode ``sk_color.avi`` and ``sk_depth.avi`` with PyAV over the list's
[start, end) range, take ``T`` evenly spaced frames (the clip's frame ``i`` for RGB and
depth, flow from frame ``i`` to ``i + 1``; the last frame pairs with its predecessor), resize
to S×S, store uint8 (T, C, S, S). The loop, resuming and failure report are the shared ones.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmrl_env.data import flow
from mmrl_env.data.audio_video import PrepareError
from mmrl_env.data.build_cache import fill_cache
from mmrl_env.data.cache import CacheWriter
from mmrl_env.data.frames import even_indices
from mmrl_env.data.nvgesture import LAYOUT, MODALITIES, GestureRow, Sensor, read_lists
from mmrl_env.extras import require


def decode_range(raw: Path, sensor: Sensor, size: int, mode: str = "RGB") -> np.ndarray:
    """Frames [start, end) of ``sensor``'s video, resized: (n, size, size, 3) or (n, size, size) for 'L'.

    A video shorter than ``end`` keeps what it has (the lists' ends are sometimes one past).
    """
    av = require("av", "decoding NVGesture videos")

    path = raw / sensor.video
    if not path.is_file():
        raise FileNotFoundError(f"missing {sensor.video}")
    kept = []
    try:
        with av.open(str(path)) as container:
            for n, frame in enumerate(container.decode(video=0)):
                if n >= sensor.end:
                    break
                if n >= sensor.start and not getattr(frame, "is_corrupt", False):  # a damaged frame is grey
                    img = frame.to_image().convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                    kept.append(np.asarray(img, dtype=np.uint8))
    except Exception as err:  # PyAV raises its own error types for damaged files
        raise ValueError(f"corrupt {sensor.video}: {err}") from err
    if len(kept) < 2:
        raise ValueError(f"{sensor.video} has {len(kept)} decodable frames in [{sensor.start}, {sensor.end}); need 2")
    return np.stack(kept)


def process_gesture(raw: Path, count: int, size: int, row: GestureRow) -> dict[str, np.ndarray]:
    """One clip → {"rgb": (T, 3, S, S), "flow": (T, 2, S, S), "depth": (T, 1, S, S)} uint8."""
    color = decode_range(raw, row.color, size)
    idx = even_indices(len(color), count)
    first = np.minimum(idx, len(color) - 2)
    flows = np.stack([flow.encode(flow.farneback(color[i], color[i + 1])) for i in first])
    depth = decode_range(raw, row.depth, size, mode="L")
    return {"rgb": color[idx].transpose(0, 3, 1, 2), "flow": flows,
            "depth": depth[even_indices(len(depth), count)][:, None]}


def _attempt(raw: Path, count: int, size: int, row: GestureRow) -> dict[str, np.ndarray] | str:
    try:
        return process_gesture(raw, count, size, row)
    except (OSError, ValueError, RuntimeError) as err:
        return str(err)


def prepare_nvgesture(raw: Path | str, out: Path | str, frames: int = 16, size: int = 224, overwrite: bool = False,
                      progress: bool = True, workers: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build (or resume) the NVGesture cache in ``out``; returns the manifest."""
    raw, out = Path(raw), Path(out)
    if not raw.is_dir():
        raise PrepareError(f"raw NVGesture directory {raw} does not exist; expected layout:\n{LAYOUT}")
    if frames < 1:
        raise PrepareError(f"--frames must be at least 1, got {frames}")
    rows = read_lists(raw)
    meta = {"dataset": "NVGesture", "clips": [r.clip for r in rows], "splits": [r.split for r in rows],
            "classes": [str(i + 1) for i in range(25)],
            "config": {"frames": {"count": frames, "size": size},
                       "flow": {"method": "farneback", "bound": flow.BOUND}}}
    arrays = {name: ((frames, c, size, size), "uint8") for name, c in MODALITIES}
    writer = CacheWriter(out, meta, arrays, np.array([r.label for r in rows]), overwrite)
    return fill_cache("NVGesture", writer, [r.clip for r in rows], partial(_attempt, raw, frames, size), raw, LAYOUT,
                      workers, progress, log, inputs=rows)
