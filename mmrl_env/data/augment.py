"""Batched RandomResizedCrop + horizontal flip: a whole batch in a handful of kernels.

The per-clip path (``torchvision.transforms.v2`` in a Python loop, one antialiased resize per
clip) made the host launch-bound on a GPU: 512 resizes per env step at B = 64 (issue 13).
Here the boxes of the whole batch are drawn at once and applied by one kernel.

**Boxes** (:func:`sample_boxes`): torchvision's ``RandomResizedCrop`` recipe, vectorised —
per sample 10 attempts of (area ~ U(scale)·H·W, log aspect ~ U(log ratio)), ``w``/``h`` rounded
half-to-even as Python's ``round``, the first attempt that fits is kept, its position uniform
over the valid offsets; if none fits, the same central-crop fallback (aspect clamped into
``ratio``). All draws come from the caller's ``torch.Generator`` (the split's private one, never
the global RNG), on that generator's device; the same seed gives the same boxes on CPU and CUDA.

**Resampling**: ``torchvision.ops.roi_align`` (``aligned=True``, adaptive ``sampling_ratio``).
Why this and not the alternatives:

* per-sample boxes are its native input (``(K, 5)`` rows ``[batch index, x1, y1, x2, y2]``),
  so there is no per-sample grid to build (``affine_grid`` + ``grid_sample`` needs a
  B×S×S×2 grid and three extra kernels) and no new dependency (Kornia would add one for the
  same two ops);
* a clip's frames are folded into the channel axis, so one box crops all its frames alike;
* on **upscale** (every crop at the default sizes: the stored side equals ``image_size``, and a
  crop never exceeds the image) it takes one bilinear sample at each output pixel's centre,
  ``(o + ½)·w/S − ½`` source pixels from the crop's edge: exactly the sampling positions of
  torchvision's bilinear resize (``align_corners=False``), where antialiasing has no effect;
* on **downscale** (``image_size`` below the stored side) it averages ``ceil(w/S)²`` bilinear
  samples spread over each output pixel's footprint: a box prefilter, so it does antialias,
  but with a box where torchvision's ``antialias=True`` uses a wider triangle filter. The two
  differ by a few grey levels (every ``bench/gpu_throughput.py`` run measures it on a fixed box;
  figures in BENCHMARKS.md); ``grid_sample`` would not antialias at all.

**Backends.** ``batched`` is the above; on the CPU, ``auto`` picks ``per_sample`` instead:
the same boxes and flips, applied by torchvision's uint8 resize per sample. A CPU has no
launch overhead to remove, and its float roi_align over the whole stored frame (plus the
float conversion of the full input and the flip's copy) measured about 2× slower than the
SIMD uint8 resize, which touches only the crop (BENCHMARKS.md). Both backends are tested
against each other (they differ only by uint8 rounding and at the crop's border).

Other differences of the batched path from the per-clip torchvision path, both small: at a
crop's border roi_align reads the neighbouring pixels of the full image where a
cropped-then-resized tensor repeats its edge pixel, and the result is float (the old path
rounded the resized image back to uint8 before normalising). Flip: one ``torch.where`` over
the batch (probability ``flip_p`` per sample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align
from torchvision.transforms import v2

from mmrl_env.data.base import to_device

ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before falling back
DEFAULT_RATIO = (3.0 / 4.0, 4.0 / 3.0)
BACKENDS = ("auto", "batched", "per_sample")


def sample_boxes(n: int, height: int, width: int, generator: torch.Generator,
                 scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = DEFAULT_RATIO) -> Tensor:
    """``n`` crop boxes of an ``height``×``width`` image as int64 rows ``[top, left, h, w]``,
    distributed as torchvision's ``RandomResizedCrop.make_params`` (on ``generator``'s device)."""
    if not (0 < scale[0] <= scale[1]) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"scale and ratio must be increasing positive ranges, got scale={scale}, ratio={ratio}")
    dev, f64 = generator.device, torch.float64
    u = torch.rand((3, n, ATTEMPTS), generator=generator, device=dev, dtype=f64)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * u[0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * u[1])
    w = torch.round(torch.sqrt(area * aspect))  # round half to even, as Python's round()
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.int8).argmax(dim=1, keepdim=True)  # first attempt that fits
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # fallback (no attempt fits): the central crop, aspect clamped into ``ratio``
    in_ratio = width / height
    fw, fh = float(width), float(height)
    if in_ratio < ratio[0]:
        fh = float(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw = float(round(height * ratio[1]))
    ok = fits.any(dim=1)
    w = torch.where(ok, w, torch.full_like(w, fw))
    h = torch.where(ok, h, torch.full_like(h, fh))
    # uniform offsets (torchvision: randint(0, H - h + 1)); the fallback is centred
    pos = torch.rand((2, n), generator=generator, device=dev, dtype=f64)
    top = torch.where(ok, torch.floor(pos[0] * (height - h + 1)).clamp_max(height - h), (height - h) // 2)
    left = torch.where(ok, torch.floor(pos[1] * (width - w + 1)).clamp_max(width - w), (width - w) // 2)
    return torch.stack([top, left, h, w], dim=1).long()


def crop_rois(boxes: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """``[top, left, h, w]`` boxes → roi_align rows ``[batch index, x1, y1, x2, y2]``."""
    top, left, h, w = boxes.to(dtype).unbind(1)
    index = torch.arange(boxes.shape[0], device=boxes.device, dtype=dtype)
    return torch.stack([index, left, top, left + w, top + h], dim=1)


def resized_crop(x: Tensor, rois: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Crop each sample of float ``x`` (B, C, H, W) to its roi (:func:`crop_rois`, on ``x``'s
    device) and resize it to ``size``: bilinear, box-averaged on downscale, one ``roi_align``."""
    out = (size, size) if isinstance(size, int) else size
    return roi_align(x, rois, out, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _per_sample(x: Tensor, boxes: Tensor, flip: Tensor, size: int) -> Tensor:
    """The CPU backend: torchvision's uint8 resize per sample on the drawn boxes (SIMD, and it
    touches only the crop) — on a CPU there is no launch overhead for batching to remove."""
    out = torch.empty((*x.shape[:-2], size, size), dtype=x.dtype, device=x.device)
    for n, (top, left, h, w) in enumerate(boxes.tolist()):
        crop = v2.functional.resized_crop(x[n], top, left, h, w, [size, size], antialias=True)
        out[n] = crop.flip(-1) if flip[n] else crop
    return out.float()


def random_resized_crop_flip(x: Tensor, size: int, generator: torch.Generator,
                             scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = DEFAULT_RATIO,
                             flip_p: float = 0.5, backend: str = "auto") -> Tensor:
    """uint8 or float ``x`` (B, ..., H, W) → float32 (B, ..., size, size): one random box per
    sample (shared by all its leading dims, e.g. a clip's frames and channels), then a
    horizontal flip with probability ``flip_p`` per sample. Values keep their scale (0..255 for
    uint8 input); draws come from ``generator`` only, and reach ``x``'s device in one copy.

    ``backend``: ``batched`` (one ``roi_align`` + one ``where`` for the batch), ``per_sample``
    (torchvision per sample, same boxes), or ``auto``: ``per_sample`` on the CPU, where it is
    the faster (BENCHMARKS.md), ``batched`` on an accelerator.
    """
    if x.dim() < 3:
        raise ValueError(f"expected a batch (B, ..., H, W), got shape {tuple(x.shape)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown augmentation backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "per_sample" if x.device.type == "cpu" else "batched"
    lead, (height, width) = x.shape[:-2], x.shape[-2:]
    n = x.shape[0]
    boxes = sample_boxes(n, height, width, generator, scale, ratio)
    flip = torch.rand(n, generator=generator, device=generator.device) < flip_p
    if backend == "per_sample":  # per sample (F, C, H, W): torchvision's 3-channel uint8 fast path
        return _per_sample(x, boxes.cpu(), flip.cpu(), size)
    params = to_device(torch.cat([crop_rois(boxes), flip[:, None].float()], dim=1), x.device)
    out = resized_crop(x.reshape(n, -1, height, width).float(), params[:, :5], size)
    if flip_p > 0:
        out = torch.where(params[:, 5].view(n, 1, 1, 1) > 0.5, out.flip(-1), out)
    return out.view(*lead, size, size)


class Normalize:
    """In place ``(x·scale − mean) / std`` over the channel axis -3 in two kernels (the
    0..255 → [0, 1] scaling folded in); the constants are copied to each device once."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], scale: float = 1.0 / 255) -> None:
        m, s = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        self.host = ((scale / s).view(-1, 1, 1), (m / s).view(-1, 1, 1))
        self.on: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def __call__(self, x: Tensor) -> Tensor:
        if x.device not in self.on:
            self.on[x.device] = (self.host[0].to(x.device), self.host[1].to(x.device))
        mul, sub = self.on[x.device]
        return x.mul_(mul).sub_(sub)
