"""The observation vector: which quantity sits where, and the one function that builds it.

Core entries (every env): ŝ (M), d = ŝ − max ŝ (M), progress (1), previous action (A).
Optional extras follow in declaration order (``val_acc``, BSS's ``balance``). Policies read
entries by name through :meth:`ObservationLayout.slice`, so they never hard-code positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mmrl_env.monitors.cmd import modality_discrepancy


@dataclass(frozen=True)
class ObservationExtra:
    """An optional block of entries after the core layout, with its bounds."""

    name: str
    low: tuple[float, ...]
    high: tuple[float, ...]

    @property
    def size(self) -> int:
        return len(self.low)


@dataclass(frozen=True)
class ObservationLayout:
    """Where each quantity sits in the flat observation vector, and how to assemble it."""

    num_modalities: int
    action_dim: int
    extras: tuple[ObservationExtra, ...] = ()
    s_low: float = 0.0  # lower bound of ŝ: 0, or −1 when chance-normalised (``obs_norm="chance"``)

    @property
    def s_hat(self) -> slice:
        return slice(0, self.num_modalities)

    @property
    def d(self) -> slice:
        return slice(self.num_modalities, 2 * self.num_modalities)

    @property
    def progress(self) -> int:
        return 2 * self.num_modalities

    @property
    def prev_action(self) -> slice:
        start = 2 * self.num_modalities + 1
        return slice(start, start + self.action_dim)

    @property
    def core_size(self) -> int:
        """Entries every env has (before the extras)."""
        return self.prev_action.stop

    @property
    def size(self) -> int:
        return self.core_size + sum(e.size for e in self.extras)

    def slice(self, name: str) -> slice:
        """The entries of ``name``: a core quantity (``s_hat``, ``d``, ``progress``,
        ``prev_action``) or a declared extra."""
        if name == "progress":
            return slice(self.progress, self.progress + 1)
        if name in ("s_hat", "d", "prev_action"):
            return getattr(self, name)
        start = self.core_size
        for extra in self.extras:
            if extra.name == name:
                return slice(start, start + extra.size)
            start += extra.size
        raise KeyError(f"no observation entry {name!r}; this layout has s_hat, d, progress, prev_action"
                       + "".join(f", {e.name}" for e in self.extras))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of every entry (copies: callers may modify them)."""
        low, high = self._bounds
        return low.copy(), high.copy()

    @cached_property
    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = np.zeros(self.size, np.float32), np.ones(self.size, np.float32)
        low[self.s_hat] = self.s_low
        low[self.d], high[self.d] = -1.0, 0.0
        low[self.prev_action] = -1.0
        for extra in self.extras:
            sl = self.slice(extra.name)
            low[sl], high[sl] = extra.low, extra.high
        return low, high

    def assemble(self, s_hat: np.ndarray, progress: float, prev_action: np.ndarray,
                 extras: Mapping[str, np.ndarray]) -> np.ndarray:
        """The observation: d is computed here from ŝ (the CMD's definition, one place), NaN
        (e.g. a diverged run) becomes 0 and every entry is clipped into its bounds."""
        s_hat = np.asarray(s_hat, np.float32).reshape(-1)
        parts = [s_hat, modality_discrepancy(s_hat), [progress], np.asarray(prev_action).reshape(-1),
                 *(np.asarray(extras[e.name], np.float32).reshape(-1) for e in self.extras)]
        obs = np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in parts])
        if obs.size != self.size:
            raise ValueError(f"observation parts have {obs.size} entries, the layout declares {self.size}")
        low, high = self._bounds
        return np.clip(np.nan_to_num(obs, nan=0.0), low, high).astype(np.float32)


def env_layout(num_modalities: int, action_dim: int, obs_extras: tuple[str, ...], obs_norm: str,
               method_extras: tuple[ObservationExtra, ...] = ()) -> ObservationLayout:
    """The layout of an env's observation: the core entries, the shared extras it asked for
    (``val_acc``: fused, then per modality) and then its method's (BSS's ``balance``). With
    ``obs_norm="chance"`` the scores (ŝ and ``val_acc``) range over [−1, 1]."""
    low = -1.0 if obs_norm == "chance" else 0.0
    val_acc = ObservationExtra("val_acc", (low,) * (num_modalities + 1), (1.0,) * (num_modalities + 1))
    shared = (val_acc,) if "val_acc" in obs_extras else ()
    return ObservationLayout(num_modalities, action_dim, (*shared, *method_extras), s_low=low)
