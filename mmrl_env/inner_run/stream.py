"""A shuffled index stream: windows over consecutive random permutations of a split."""

from __future__ import annotations

import torch
from torch import Tensor


class ShuffledStream:
    """Hands out index windows from an endless chain of permutations of ``range(n)``.

    ``next_window(size, stride)`` returns the next ``size`` indices and advances by
    ``stride``: with size > stride, windows overlap (a modality given more than B samples
    sees the next samples early), and every window is a prefix-compatible view of one shared
    order, as DUS's unimodal sampling needs. Uses only the private ``generator``.
    """

    def __init__(self, n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> None:
        if n <= 0:
            raise ValueError("cannot sample from an empty split")
        self.n, self.generator, self.device = n, generator, torch.device(device)
        self._buffer = torch.empty(0, dtype=torch.long)

    MAX_PASSES = 64  # a window longer than this many passes over the split is a mistake, not a batch

    def next_window(self, size: int, stride: int) -> Tensor:
        if max(size, stride) > self.MAX_PASSES * self.n:
            raise ValueError(f"a window of {max(size, stride)} samples over a split of {self.n} would join "
                             f"{-(-max(size, stride) // self.n)} shuffles of it; the batch is far larger than the "
                             "data (lower batch_size / n_max)")
        while self._buffer.numel() < max(size, stride):
            perm = torch.randperm(self.n, generator=self.generator)
            self._buffer = torch.cat([self._buffer, perm])
        window = self._buffer[:size]
        self._buffer = self._buffer[stride:]
        return window.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Tensor]:
        return {"buffer": self._buffer.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Continue from ``state_dict()``; a buffer that is not indices into this split is refused."""
        buffer = state["buffer"]
        if not isinstance(buffer, Tensor) or buffer.dtype != torch.long or buffer.dim() != 1 \
                or (buffer.numel() and (buffer.min() < 0 or buffer.max() >= self.n)):
            raise ValueError(f"a sampler state holds indices outside this split of {self.n} samples "
                             "(saved on other data?)")
        self._buffer = buffer.clone()
