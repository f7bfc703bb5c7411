"""Dense optical flow between consecutive RGB frames, stored as uint8 like flow images.

Dependency choice: OpenCV's Farneback (``opencv-python-headless``, a CPU wheel). It needs
no weights and no GPU, so ``prepare`` works anywhere; torchvision's RAFT would need weights
the user must fetch by hand and is slow on a CPU, and TV-L1 (what the I3D paper used) lives
only in ``opencv-contrib``. Flow is clipped to ±``BOUND`` pixels and mapped linearly to
0..255 — the usual flow-image encoding, so the cache stays uint8 and the loader maps it back
to [-1, 1] like the I3D flow stream expects.
"""

from __future__ import annotations

import numpy as np

from mmrl_env.extras import require

BOUND = 20.0  # pixels (of the stored frame size)


def farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 flow (dx, dy) from RGB uint8 frame ``prev`` (H, W, 3) to ``nxt``."""
    cv2 = require("cv2", "NVGesture's optical flow")

    a, b = (cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (prev, nxt))
    return cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3,
                                        poly_n=5, poly_sigma=1.2, flags=0)


def encode(flow: np.ndarray, bound: float = BOUND) -> np.ndarray:
    """(H, W, 2) float flow → (2, H, W) uint8, 128 ≈ no motion."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.rint(scaled).astype(np.uint8).transpose(2, 0, 1)
