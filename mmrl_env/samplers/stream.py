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

    def next_window(self, size: int, stride: int) -> Tensor:
        while self._buffer.numel() < max(size, stride):
            perm = torch.randperm(self.n, generator=self.generator)
            self._buffer = torch.cat([self._buffer, perm])
        window = self._buffer[:size]
        self._buffer = self._buffer[stride:]
        return window.to(self.device, non_blocking=True)

    def state_dict(self) -> dict[str, Tensor]:
        return {"buffer": self._buffer.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self._buffer = state["buffer"].clone()
