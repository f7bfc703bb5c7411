"""The training loop as a Gymnasium environment (SPEC §6), shared by DUS and BSS.

Episode = one inner training run; step = one decision interval (the subclass says how
long and what the action controls); observation = CMD + progress + previous action
(+ extras); reward = validation gain. Subclasses implement ``action_space`` semantics in
``_advance``.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from mmrl_env.data import load_dataset
from mmrl_env.kwargs import unknown_kwargs_message
from mmrl_env.learners.base import OptimConfig
from mmrl_env.metrics import accuracy, classification_metrics, prediction_metrics
from mmrl_env.monitors.cmd import CumulativeDiscrepancy
from mmrl_env.trainer import InnerTrainer, TrainerConfig

REWARDS = ("acc", "f1", "loss")
OBS_EXTRAS = ("val_acc",)


@dataclass(frozen=True)
class ObservationLayout:
    """Where each quantity sits in the flat observation vector (policies read it)."""

    num_modalities: int
    action_dim: int

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
    def size(self) -> int:
        """Entries of the core layout; optional extras (``_extra_observation``) follow them."""
        return self.prev_action.stop

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = np.zeros(self.size, np.float32), np.ones(self.size, np.float32)
        low[self.d], high[self.d] = -1.0, 0.0
        low[self.prev_action] = -1.0
        return low, high


def append_extra(base: tuple[np.ndarray, np.ndarray], low: list[float], high: list[float]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``base`` bounds with a subclass's own extra entries appended."""
    return (np.concatenate([base[0], np.asarray(low, np.float32)]),
            np.concatenate([base[1], np.asarray(high, np.float32)]))


class MultimodalTrainingEnv(gym.Env):
    """Base env. Keyword arguments (all optional) choose data, learner, sizes and reward.

    dataset / dataset_kwargs: a registered dataset and its loader's arguments.
    learner / learner_kwargs: inner dynamics (``joint``; more in ``mmrl_env.learners``).
    batch_size, epochs, optim: the inner run (optim: dict of ``OptimConfig`` fields).
    val_size: size of the fixed validation subset the reward is measured on (None = all).
    reward: ``acc`` (100·Δ accuracy, default), ``f1`` (100·Δ macro-F1), ``loss`` (−Δ val loss).
    cmd_mode / cmd_ema: the CMD's running mean (paper) or EMA.
    obs_extras: optional observation extras, from ``OBS_EXTRAS``.
    device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        dataset: str = "Synthetic",
        dataset_kwargs: dict[str, Any] | None = None,
        learner: str = "joint",
        learner_kwargs: dict[str, Any] | None = None,
        batch_size: int = 64,
        epochs: int = 8,
        optim: dict[str, Any] | None = None,
        val_size: int | None = 500,
        reward: str = "acc",
        cmd_mode: str = "mean",
        cmd_ema: float = 0.99,
        obs_extras: tuple[str, ...] | list[str] = (),
        device: str = "auto",
    ) -> None:
        super().__init__()
        if reward not in REWARDS:
            raise ValueError(f"unknown reward {reward!r}; choose one of {', '.join(REWARDS)}")
        unknown = set(obs_extras) - set(OBS_EXTRAS)
        if unknown:
            raise ValueError(f"unknown obs_extras {sorted(unknown)}; choose from {', '.join(OBS_EXTRAS)}")
        self.data = load_dataset(dataset, **(dataset_kwargs or {}))
        message = unknown_kwargs_message(optim or {}, OptimConfig.__dataclass_fields__, "optim setting(s)")
        if message:
            raise ValueError(message)
        # the dataset's recommended optimisation, overridden by the caller's keys
        optim_cfg = OptimConfig(**{**self.data.optim_defaults, **(optim or {})})
        cfg = TrainerConfig(batch_size=batch_size, epochs=epochs, learner=learner,
                            learner_kwargs=dict(learner_kwargs or {}), optim=optim_cfg)
        self.trainer = InnerTrainer(self.data, cfg, device)
        self.modalities = self.data.modality_names
        self.reward_kind = reward
        self.obs_extras = tuple(obs_extras)
        m = self.data.num_modalities
        self.monitor = CumulativeDiscrepancy(m, cmd_mode, cmd_ema, self.trainer.device)
        n_val = len(self.trainer.dataset.val)
        self._val_idx = torch.arange(min(val_size or n_val, n_val), device=self.trainer.device)
        self.action_space = self._make_action_space()
        self.layout = ObservationLayout(m, int(np.prod(self.action_space.shape)))
        (low, high), (x_low, x_high) = self.layout.bounds(), self._extra_bounds()
        self.observation_space = gym.spaces.Box(np.concatenate([low, x_low]), np.concatenate([high, x_high]),
                                                dtype=np.float32)
        self._prev_action = np.zeros(self.layout.action_dim, np.float32)
        self._val: dict[str, float] | None = None  # None until reset: step() refuses to run before it
        self._done = False
        self._clipped = 0  # action entries clipped into the action space this episode

    # --- subclass hooks -------------------------------------------------------------
    @abstractmethod
    def _make_action_space(self) -> gym.spaces.Box:
        """The action space; ``self.data`` and ``self.trainer`` exist already."""

    @abstractmethod
    def _advance(self, action: np.ndarray) -> dict[str, Any]:
        """Run one decision interval under ``action``; return method-specific info."""

    def _on_reset(self) -> None:
        """Method-specific state at the start of an inner run."""

    def _neutral_action(self) -> np.ndarray:
        return np.zeros(self.layout.action_dim, np.float32)

    def _observe_batch(self, batch: Any, out: Any) -> None:
        """Trainer hook of every env: feed each iteration's unimodal logits to the CMD."""
        self.monitor.update(out.unimodal_logits, batch.labels)

    def _progress(self) -> float:
        """Fraction of the inner run done (DUS: iterations; BSS overrides with epochs)."""
        return self.trainer.iteration / self.trainer.total_iterations

    def _finished(self) -> bool:
        return self.trainer.done

    def _extra_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the optional entries after the core layout: here ``obs_extras``;
        subclasses append theirs to ``super()``'s (see :func:`append_extra`)."""
        n = (len(self.modalities) + 1) * ("val_acc" in self.obs_extras)
        return np.zeros(n, np.float32), np.ones(n, np.float32)

    def _extra_observation(self) -> np.ndarray:
        """Values of those entries, within ``_extra_bounds``."""
        if "val_acc" not in self.obs_extras:
            return np.zeros(0, np.float32)
        return np.array([self._val["acc"], *(self._val[f"acc_{n}"] for n in self.modalities)], np.float32)

    # --- gymnasium API --------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.trainer.reset(int(self.np_random.integers(0, 2**31 - 1)))
        self.monitor.reset()
        self._on_reset()
        self._prev_action = self._neutral_action()
        self._val = self._validate()
        self._done, self._clipped = False, 0
        return self._observation(), self._info({})

    def step(self, action: np.ndarray):
        if self._val is None:
            raise RuntimeError("call reset() before step(): no inner training run has started")
        if self._done:
            raise RuntimeError("this inner training run has ended (terminated=True); call reset() to start another")
        action, clipped = self._check_action(action)
        self._clipped += clipped
        step_info = self._advance(action)
        self._prev_action = action
        loss = float(step_info.pop("train_loss"))
        diverged = not np.isfinite(loss)
        prev = self._val
        if diverged:
            reward = 0.0
        else:
            self._val = self._validate()
            reward = self._reward(prev, self._val)
        terminated = self._done = diverged or self._finished()
        info = self._info(step_info, train_loss=loss, diverged=diverged, clipped=clipped,
                          clipped_episode=self._clipped)
        if terminated and not diverged:
            info["test"] = self.evaluate("test")
        return self._observation(), reward, terminated, False, info

    # --- helpers --------------------------------------------------------------------
    def _check_action(self, action: Any) -> tuple[np.ndarray, int]:
        """The action as a finite array of the space's shape, clipped into the space, and how
        many entries needed clipping. Raises ``ValueError`` before any state changes, so a bad
        action costs nothing: the run continues from the same point with the next action."""
        expected = f"{self.layout.action_dim} finite number(s) in [-1, 1] (shape {self.action_space.shape})"
        try:
            a = np.asarray(action, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ValueError(f"action must be {expected}, got {action!r}") from err
        if a.size != self.layout.action_dim:
            raise ValueError(f"action must have {self.layout.action_dim} values (one per "
                             f"{'modality' if self.layout.action_dim > 1 else 'step'}), got shape {a.shape}")
        a = a.reshape(self.action_space.shape)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or infinite values: {a}; expected {expected}")
        clipped = np.clip(a, self.action_space.low, self.action_space.high)
        return clipped, int(np.count_nonzero(clipped != a))

    def _validate(self) -> dict[str, float]:
        pred, y = self.trainer.predict(self.trainer.dataset.val, self._val_idx)
        out = {"acc": accuracy(pred.fused, y)}
        out.update({f"acc_{n}": accuracy(z, y) for n, z in zip(self.modalities, pred.unimodal, strict=True)})
        if self.reward_kind == "f1":
            out["f1"] = classification_metrics(pred.fused, y)["f1"]
        if self.reward_kind == "loss":
            out["loss"] = float(torch.nn.functional.cross_entropy(pred.fused, y).item())
        return out

    def _reward(self, prev: dict[str, float], cur: dict[str, float]) -> float:
        if self.reward_kind == "loss":
            return prev["loss"] - cur["loss"]
        return 100.0 * (cur[self.reward_kind] - prev[self.reward_kind])

    def _observation(self) -> np.ndarray:
        s_hat = self.monitor.s_hat.cpu().numpy()
        parts = [s_hat, s_hat - s_hat.max(), [self._progress()], self._prev_action.reshape(-1),
                 self._extra_observation()]
        obs = np.concatenate([np.asarray(p, np.float32).reshape(-1) for p in parts])
        low, high = self.observation_space.low, self.observation_space.high
        return np.clip(np.nan_to_num(obs, nan=0.0), low, high).astype(np.float32)

    def _info(self, step_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        s_hat = self.monitor.s_hat.cpu().numpy()
        info: dict[str, Any] = {
            "iteration": self.trainer.iteration,
            "epoch": self.trainer.epoch,
            "s_hat": dict(zip(self.modalities, s_hat.tolist(), strict=True)),
            "d": dict(zip(self.modalities, (s_hat - s_hat.max()).tolist(), strict=True)),
            "val_acc": self._val["acc"],
            "val_acc_modality": {n: self._val[f"acc_{n}"] for n in self.modalities},
            **self.trainer.learner.info(),
            **step_info,
            **extra,
        }
        return info

    # --- checkpoints ----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """A deep copy of everything that decides the rest of the episode (and later episodes):
        the inner trainer (model, optimizer, LR schedule, index stream, private generator,
        counters), the CMD, the reward baseline, the env's ``np_random``. Subclasses extend it
        with ``{**super().get_state(), ...}`` and restore their part in ``set_state``."""
        state = {
            "identity": self._identity(),
            "np_random": None if self._np_random is None else self._np_random.bit_generator.state,
            "np_random_seed": self._np_random_seed,
            "trainer": self.trainer.state_dict(),
            "monitor": self.monitor.state_dict(),
            "prev_action": self._prev_action,
            "val": self._val,
            "done": self._done,
            "clipped": self._clipped,
        }
        return copy.deepcopy(state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``get_state()``'s snapshot; refuses one taken on a different env."""
        saved, mine = state["identity"], self._identity()
        if saved != mine:
            diff = "; ".join(f"{k}: saved {saved.get(k)!r}, this env {mine.get(k)!r}"
                             for k in {**saved, **mine} if saved.get(k) != mine.get(k))
            raise ValueError(f"this state was saved by a different env ({diff})")
        state = copy.deepcopy(state)
        self._np_random = None  # not yet seeded, as when the state was taken
        if state["np_random"] is not None:
            self._np_random = np.random.Generator(getattr(np.random, state["np_random"]["bit_generator"])())
            self._np_random.bit_generator.state = state["np_random"]
        self._np_random_seed = state["np_random_seed"]
        self.trainer.load_state_dict(state["trainer"])
        self.monitor.load_state_dict(state["monitor"])
        self._prev_action = state["prev_action"]
        self._val, self._done, self._clipped = state["val"], state["done"], state["clipped"]

    def _identity(self) -> dict[str, Any]:
        """What must match for a state to fit this env: class, data, learner, spaces."""
        d = self.trainer.dataset
        return {"env": type(self).__name__, "dataset": d.name, "classes": d.num_classes,
                "split_sizes": [len(d.train), len(d.val), len(d.test)],
                "modalities": list(self.modalities), "learner": self.trainer.cfg.learner,
                "action_shape": list(self.action_space.shape), "observation_shape": list(self.observation_space.shape)}

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Full metrics (acc, f1, map) of the current inner model, fused and per modality."""
        pred, y = self.trainer.predict(getattr(self.trainer.dataset, split))
        return prediction_metrics(pred.fused, pred.unimodal, y, self.modalities)
