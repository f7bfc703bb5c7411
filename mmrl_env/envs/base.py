"""The training loop as a Gymnasium environment, shared by DUS and BSS.

Episode = one inner training run; step = one decision interval (the subclass says how
long and what the action controls); observation = CMD + progress + previous action
(+ extras); reward = validation gain. The base is the loop only; its parts live apart:
the trainer (``mmrl_env.trainer``), the reward (``reward.py``), the observation layout
(``layout.py``), action checking (``actions.py``) and what policies may read
(``control.py``). A subclass builds its action map after ``super().__init__`` and
declares it with :meth:`MultimodalTrainingEnv.declare`.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from mmrl_env.envs.actions import check_action
from mmrl_env.envs.control import ActionMap, ControlSpec
from mmrl_env.envs.layout import ObservationExtra, ObservationLayout
from mmrl_env.envs.reward import ValidationReward
from mmrl_env.kwargs import unknown_kwargs_message
from mmrl_env.monitors.cmd import CumulativeDiscrepancy, modality_discrepancy
from mmrl_env.trainer import build_trainer

OBS_EXTRAS = ("val_acc",)


class MultimodalTrainingEnv(gym.Env):
    """Base env. Keyword arguments (all optional) choose data, learner, sizes and reward.

    dataset / dataset_kwargs: a registered dataset and its loader's arguments.
    learner / learner_kwargs: inner dynamics (``joint``; more in ``mmrl_env.learners``).
    batch_size, epochs, optim: the inner run (optim: dict of ``OptimConfig`` fields).
    val_size: size of the fixed validation subset the reward is measured on (None = all).
    reward: ``acc`` (100·Δ accuracy, default), ``f1`` (100·Δ macro-F1), ``loss`` (−Δ val loss).
    cmd_kwargs: the CMD monitor's settings, ``{"mode": "mean" | "ema", "ema": 0.99}``.
    obs_extras: optional observation extras, from ``OBS_EXTRAS``.
    device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.

    Sub-settings of a component are always a nested dict named ``<component>_kwargs``
    (``optim`` too); the old flat names (``cmd_mode``, ``cmd_ema``, ...) still work through
    ``gym.make`` with a deprecation warning (``RENAMED_KWARGS``).
    """

    metadata = {"render_modes": []}
    method: ClassVar[str] = ""
    # old keyword -> its new (dotted) place; applied by ``gym.make`` (``mmrl_env.kwargs.apply_renames``)
    RENAMED_KWARGS: ClassVar[dict[str, str]] = {"cmd_mode": "cmd_kwargs.mode", "cmd_ema": "cmd_kwargs.ema"}

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
        cmd_kwargs: dict[str, Any] | None = None,
        obs_extras: tuple[str, ...] | list[str] = (),
        device: str = "auto",
    ) -> None:
        super().__init__()
        unknown = set(obs_extras) - set(OBS_EXTRAS)
        if unknown:
            raise ValueError(f"unknown obs_extras {sorted(unknown)}; choose from {', '.join(OBS_EXTRAS)}")
        ValidationReward.check(reward, val_size)
        message = unknown_kwargs_message(cmd_kwargs or {}, ("mode", "ema"), "cmd_kwargs")
        if message:
            raise ValueError(message)
        self.trainer = build_trainer(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs, optim,
                                     device)
        self.modalities = self.trainer.dataset.modality_names
        self.obs_extras = tuple(obs_extras)
        cmd = {"mode": "mean", "ema": 0.99, **(cmd_kwargs or {})}
        self.monitor = CumulativeDiscrepancy(len(self.modalities), cmd["mode"], cmd["ema"], self.trainer.device)
        self.reward = ValidationReward(reward, val_size, self.trainer)
        self._val: dict[str, float] | None = None  # None until reset: step() refuses to run before it
        self._done = False
        self._clipped = 0  # action entries clipped into the action space this episode

    def declare(self, action_map: ActionMap, extras: tuple[ObservationExtra, ...] = (),
                settings: dict[str, Any] | None = None) -> None:
        """Called once by the subclass's constructor: its action map, its observation extras
        (after the base's) and the settings policies may read. Sets the spaces and ``control``."""
        m = len(self.modalities)
        val_acc = ObservationExtra("val_acc", (0.0,) * (m + 1), (1.0,) * (m + 1))  # fused, then per modality
        base = (val_acc,) if "val_acc" in self.obs_extras else ()
        self.action_map = action_map
        self.layout = ObservationLayout(m, int(np.prod(action_map.shape)), (*base, *extras))
        self.action_space = gym.spaces.Box(-1.0, 1.0, action_map.shape, dtype=np.float32)
        self.observation_space = gym.spaces.Box(*self.layout.bounds(), dtype=np.float32)
        self.control = ControlSpec(self.method, tuple(self.modalities), self.layout, action_map,
                                   self.trainer.cfg.epochs, dict(settings or {}))
        self._prev_action = self._neutral_action()

    # --- subclass hooks (called while stepping, never from the constructor) --------------
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

    def _extra_values(self) -> dict[str, np.ndarray]:
        """Values of the declared observation extras by name; subclasses add theirs to ``super()``'s."""
        if "val_acc" not in self.obs_extras:
            return {}
        return {"val_acc": np.array([self._val["acc"], *(self._val[f"acc_{n}"] for n in self.modalities)])}

    # --- gymnasium API --------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.trainer.reset(int(self.np_random.integers(0, 2**31 - 1)))
        self.monitor.reset()
        self._on_reset()
        self._prev_action = self._neutral_action()
        self._val = self.reward.measure(self.trainer)
        self._done, self._clipped = False, 0
        return self._observation(), self._info({})

    def step(self, action: np.ndarray):
        if self._val is None:
            raise RuntimeError("call reset() before step(): no inner training run has started")
        if self._done:
            raise RuntimeError("this inner training run has ended (terminated=True); call reset() to start another")
        action, clipped = check_action(action, self.action_space)
        self._clipped += clipped
        step_info = self._advance(action)
        self._prev_action = action
        loss = float(step_info.pop("train_loss"))
        diverged = not np.isfinite(loss)
        prev = self._val
        if diverged:
            reward = 0.0
        else:
            self._val = self.reward.measure(self.trainer)
            reward = self.reward.gain(prev, self._val)
        terminated = self._done = diverged or self._finished()
        info = self._info(step_info, train_loss=loss, diverged=diverged, clipped=clipped,
                          clipped_episode=self._clipped)
        if terminated and not diverged:
            info["test"] = self.evaluate("test")
        return self._observation(), reward, terminated, False, info

    def evaluate(self, split: str = "test") -> dict[str, float]:
        """Full metrics (acc, f1, map) of the current inner model, fused and per modality."""
        return self.trainer.evaluate(split)

    # --- observation and info ---------------------------------------------------------
    def _observation(self) -> np.ndarray:
        return self.layout.assemble(self.monitor.s_hat.cpu().numpy(), self._progress(), self._prev_action,
                                    self._extra_values())

    def _info(self, step_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        s_hat = self.monitor.s_hat.cpu().numpy()
        return {
            "iteration": self.trainer.iteration,
            "epoch": self.trainer.epoch,
            "s_hat": dict(zip(self.modalities, s_hat.tolist(), strict=True)),
            "d": dict(zip(self.modalities, modality_discrepancy(s_hat).tolist(), strict=True)),
            "val_acc": self._val["acc"],
            "val_acc_modality": {n: self._val[f"acc_{n}"] for n in self.modalities},
            **self.trainer.learner.info(),
            **step_info,
            **extra,
        }

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
