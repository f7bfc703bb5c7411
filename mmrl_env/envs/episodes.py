"""What an env keeps about each run's episode, between its steps, as one object.

Per run: its env generator (which draws the seed of each new inner run), its validation scores
at the last step (the baseline the next reward is a gain over), the previous action (part of
the observation), whether its episode ended, whether it resets at its next step (autoreset
``NEXT_STEP``) and how many action entries were clipped in the episode.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding


class Episodes:
    """The episode bookkeeping of K runs (module doc); ``neutral`` is the action before any."""

    def __init__(self, num_runs: int, neutral: np.ndarray) -> None:
        self.neutral = neutral
        self.rngs: list[np.random.Generator | None] = [None] * num_runs
        self.val: dict[str, np.ndarray] | None = None  # None until the first reset
        self.prev_action = np.tile(neutral, (num_runs, 1))
        self.done = np.zeros(num_runs, bool)
        self.needs_reset = np.zeros(num_runs, bool)
        self.clipped = np.zeros(num_runs, np.int64)

    def inner_seed(self, run: int, seed: int | None) -> int:
        """The seed of run ``run``'s next inner run, drawn from its env generator (re-seeded by
        ``seed``; made from fresh entropy the first time when there is none)."""
        rng = self.rngs[run]
        if seed is not None or rng is None:
            rng, _ = seeding.np_random(seed)
            self.rngs[run] = rng
        return int(rng.integers(0, 2**31 - 1))

    def start(self, runs: Sequence[int], val: dict[str, np.ndarray]) -> None:
        """New episodes for ``runs``, whose validation scores are now ``val`` (K,) per score."""
        if self.val is None:
            self.val = val
        for key, values in val.items():
            self.val[key][runs] = values[runs]
        self.prev_action[runs] = self.neutral
        self.done[runs], self.needs_reset[runs], self.clipped[runs] = False, False, 0

    @property
    def scores(self) -> dict[str, np.ndarray]:
        """Each run's validation scores at its last step; refused before the first reset."""
        if self.val is None:
            raise RuntimeError("call reset() before step(): no inner training run has started")
        return self.val

    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers and lists only (a checkpoint holds no pickled object)."""
        return copy.deepcopy({
            "rngs": [None if r is None else r.bit_generator.state for r in self.rngs],
            "prev_action": torch.from_numpy(self.prev_action.copy()),
            "val": None if self.val is None else {k: torch.from_numpy(v.copy()) for k, v in self.val.items()},
            "done": self.done.tolist(), "needs_reset": self.needs_reset.tolist(), "clipped": self.clipped.tolist(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()`` (copies: the state stays the caller's)."""
        self.rngs = []
        for r in state["rngs"]:
            rng = None
            if r is not None:
                rng = np.random.Generator(getattr(np.random, r["bit_generator"])())
                rng.bit_generator.state = r
            self.rngs.append(rng)
        self.prev_action = state["prev_action"].numpy().copy()
        self.val = None if state["val"] is None else {k: v.numpy().copy() for k, v in state["val"].items()}
        self.done = np.array(state["done"], bool)
        self.needs_reset = np.array(state["needs_reset"], bool)
        self.clipped = np.array(state["clipped"], np.int64)
