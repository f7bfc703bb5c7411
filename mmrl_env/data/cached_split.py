"""A :class:`~mmrl_env.data.base.Split` over cache rows: read → convert → augment → device.

``gather`` reads only the requested rows from the memory-mapped arrays (rows sorted for
locality, then put back in the caller's order), converts on the target device and applies
train-time augmentation there. ``resident=True`` copies the split's raw (uint8/float16)
rows to the device once, on the first ``gather``, so a GPU run never touches the disk again.
Augmentation draws from the split's private generator (SB3 seeds torch globally).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModalityView(Protocol):
    """How one stored array becomes model input."""

    def read(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray: ...

    def __call__(self, x: Tensor, train: bool) -> Tensor: ...


class SpectrogramView:
    """float16 (B, F, T) → float32 (B, 1, F, T); no augmentation (as in the reference)."""

    def read(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return array[rows]

    def __call__(self, x: Tensor, train: bool) -> Tensor:
        return x.float().unsqueeze(1)


class FramesView:
    """uint8 (B, F_stored, C, S, S) → float32 (B, F, C, size, size), normalised (ImageNet by default).

    ``count`` < stored frames takes evenly spaced stored frames. Train: one
    RandomResizedCrop (area ``scale``) + horizontal flip per clip (the same for all its
    frames, so motion stays consistent); eval: resize when the stored size differs.
    ``flip=False`` where left and right differ in meaning (gestures, flow). Single images
    (B, C, S, S) work too with ``stored = count = 1`` (every op acts on the last 3 dims).
    """

    def __init__(self, stored: int, count: int, size: int, flip: bool = True,
                 scale: tuple[float, float] = (0.08, 1.0), mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        from mmrl_env.data.frames import even_indices

        if not 1 <= count <= stored:
            raise ValueError(f"frames must be between 1 and the {stored} frames stored in the cache, got {count}")
        self.select = None if count == stored else even_indices(stored, count)
        self.size = size
        self.mean, self.std = list(mean), list(std)
        crop = v2.RandomResizedCrop(size, scale=scale, antialias=True)
        self.augment = v2.Compose([crop, v2.RandomHorizontalFlip()]) if flip else crop

    def read(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return array[rows] if self.select is None else array[rows[:, None], self.select[None, :]]

    def __call__(self, x: Tensor, train: bool) -> Tensor:
        # crop/resize on uint8 (torchvision's fast CPU path), then one float conversion
        if train:
            x = torch.stack([self.augment(clip) for clip in x])
        elif x.shape[-1] != self.size or x.shape[-2] != self.size:
            b, f = x.shape[:2]
            x = v2.functional.resize(x.flatten(0, 1), [self.size, self.size], antialias=True).unflatten(0, (b, f))
        x = v2.functional.to_dtype(x, torch.float32, scale=True)
        return v2.functional.normalize(x, self.mean, self.std, inplace=True)


class CachedSplit:
    """Rows ``rows`` of the cache arrays; labels on the host, inputs gathered per modality."""

    def __init__(self, arrays: Sequence[np.ndarray], views: Sequence[ModalityView], rows: np.ndarray,
                 labels: np.ndarray, device: torch.device | str = "cpu", resident: bool = False,
                 seed: int = 0) -> None:
        self.arrays, self.views, self.rows = list(arrays), list(views), np.asarray(rows, np.int64)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)  # labels of ``rows``, in order
        self.device = torch.device(device)
        self.resident = resident
        self._resident_data: list[Tensor] | None = None
        self._labels_dev = self.labels.to(self.device)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.rows)

    def _raw(self, modality: int, idx: Tensor) -> Tensor:
        if self.resident:
            if self._resident_data is None:
                self._resident_data = [torch.from_numpy(np.ascontiguousarray(v.read(a, self.rows))).to(self.device)
                                       for a, v in zip(self.arrays, self.views, strict=True)]
            return self._resident_data[modality].index_select(0, idx.to(self.device))
        rows = self.rows[idx.detach().cpu().numpy()]
        order = np.argsort(rows, kind="stable")
        data = self.views[modality].read(self.arrays[modality], rows[order])
        back = np.empty_like(order)
        back[order] = np.arange(order.size)
        x = torch.from_numpy(np.ascontiguousarray(data[back]))
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x

    def gather(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        x = self._raw(modality, idx)
        if not train:
            return self.views[modality](x, False)
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        with torch.random.fork_rng(devices=[]):  # torchvision draws crop/flip from the global CPU RNG
            torch.manual_seed(seed)
            return self.views[modality](x, True)

    def gather_labels(self, idx: Tensor) -> Tensor:
        return self._labels_dev.index_select(0, idx.to(self.device))

    def to(self, device: torch.device | str) -> CachedSplit:
        device = torch.device(device)
        if device == self.device:
            return self
        out = CachedSplit(self.arrays, self.views, self.rows, self.labels.numpy(), device, self.resident)
        out.generator = self.generator
        if self._resident_data is not None:
            out._resident_data = [t.to(device) for t in self._resident_data]
        return out


class VolumeView(FramesView):
    """:class:`FramesView` for 3D-conv encoders: channels before time, (B, C, T, H, W)."""

    def __call__(self, x: Tensor, train: bool) -> Tensor:
        return super().__call__(x, train).transpose(1, 2)
