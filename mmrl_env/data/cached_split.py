"""A :class:`~mmrl_env.data.base.Split` over cache rows: read → convert → augment → device.

``gather`` reads only the requested rows from the memory-mapped arrays (rows sorted for
locality, then put back in the caller's order), converts on the target device and applies
train-time augmentation there. ``resident=True`` copies the split's raw (uint8/float16)
rows to the device once, on the first ``gather``, so a GPU run never touches the disk again.
Augmentation draws from the split's private generator (SB3 seeds torch globally) and runs
batched on the batch's device (``mmrl_env.data.augment``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2

from mmrl_env.data.augment import Normalize, random_resized_crop_flip
from mmrl_env.data.base import to_device

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ModalityView(Protocol):
    """How one stored array becomes model input; train-time randomness comes from ``generator``
    (the split's private one), never from the global RNG."""

    def read(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray: ...

    def __call__(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor: ...


class SpectrogramView:
    """float16 (B, F, T) → float32 (B, 1, F, T); no augmentation (as in the reference)."""

    def read(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return array[rows]

    def __call__(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        return x.float().unsqueeze(1)


class FramesView:
    """uint8 (B, F_stored, C, S, S) → float32 (B, F, C, size, size), normalised (ImageNet by default).

    ``count`` < stored frames takes evenly spaced stored frames. Train: one
    RandomResizedCrop (area ``scale``) + horizontal flip per clip (the same for all its
    frames, so motion stays consistent), for the whole batch at once on its device
    (:func:`~mmrl_env.data.augment.random_resized_crop_flip`); eval: resize when the stored
    size differs.
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
        self.size, self.scale, self.flip_p = size, scale, 0.5 if flip else 0.0
        self.normalize = Normalize(mean, std, 1.0 / 255)

    def read(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return array[rows] if self.select is None else array[rows[:, None], self.select[None, :]]

    def __call__(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        if train:
            if generator is None:
                raise ValueError("train-time augmentation needs the split's generator")
            x = random_resized_crop_flip(x, self.size, generator, self.scale, flip_p=self.flip_p)
        else:
            if x.shape[-1] != self.size or x.shape[-2] != self.size:  # one batched antialiased resize
                lead = x.shape[:-3]
                x = v2.functional.resize(x.flatten(0, -4), [self.size, self.size], antialias=True)
                x = x.unflatten(0, lead)
            x = x.to(torch.float32, copy=True)  # normalised in place below: never the stored rows
        return self.normalize(x)


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
            return self._resident_data[modality].index_select(0, to_device(idx, self.device))  # host idx: no sync
        rows = self.rows[idx.detach().cpu().numpy()]
        order = np.argsort(rows, kind="stable")
        data = self.views[modality].read(self.arrays[modality], rows[order])
        back = np.empty_like(order)
        back[order] = np.arange(order.size)
        return to_device(torch.from_numpy(np.ascontiguousarray(data[back])), self.device)  # pinned, no sync

    def gather(self, modality: int, idx: Tensor, train: bool = False) -> Tensor:
        x = self._raw(modality, idx)
        return self.views[modality](x, train, self.generator if train else None)

    def gather_labels(self, idx: Tensor) -> Tensor:
        return self._labels_dev.index_select(0, to_device(idx, self.device))

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

    def __call__(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        return super().__call__(x, train, generator).transpose(1, 2)
