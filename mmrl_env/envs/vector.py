"""K inner training runs as one Gymnasium ``VectorEnv``: the loop every mmrl env runs on.

Run k is an episode of its own (one inner training run, its own seed, CMD, reward baseline
and method state); the K runs train as one batched engine step (``mmrl_env.engine``). The
single-run envs (``gym.make("DUS-…")``) are views of this class with K = 1, so there is one
code path. DUS and BSS subclass it with their action semantics (``_advance``).

Autoreset (Gymnasium's ``AutoresetMode``): ``SAME_STEP`` by default, as Stable-Baselines3
expects — a run that ends is reset within the same ``step``, the returned observation is
the new run's first, and ``info["final_obs"]`` / ``info["final_info"]`` hold the ended run's
last observation and info. ``NEXT_STEP`` (Gymnasium's default for its own vector envs) and
``DISABLED`` are available through ``autoreset_mode=``. With ``DISABLED`` a caller that runs
one episode per run (``agents.rollout.run_episodes``) lets the runs that ended rest while the
others go on: ``step_runs(actions, active=mask)`` steps only the runs in ``mask``.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from mmrl_env.envs.actions import check_action
from mmrl_env.envs.control import ActionMap, ControlSpec
from mmrl_env.envs.layout import ObservationExtra, ObservationLayout
from mmrl_env.envs.reward import ValidationReward
from mmrl_env.envs.runs_api import Infos, PerRunVectorEnv
from mmrl_env.inner_run.build import build_inner_run
from mmrl_env.kwargs import check_mapping, check_names, unknown_kwargs_message
from mmrl_env.limits import check_limit
from mmrl_env.metrics import prediction_metrics
from mmrl_env.monitors.cmd import CumulativeDiscrepancy, chance_normalised, modality_discrepancy
from mmrl_env.threads import check_threads, scoped_threads

OBS_EXTRAS = ("val_acc",)
OBS_NORMS = ("none", "chance")
SPLITS = ("train", "val", "test")


class MultimodalTrainingVectorEnv(PerRunVectorEnv):
    """K inner runs. Keyword arguments are the single env's (see ``MultimodalTrainingEnv``)
    plus ``num_envs`` (K), ``autoreset_mode`` and ``engine`` (``auto``: the batched engine
    where it covers the learner and encoders, else runs in sequence; ``batched``;
    ``sequential``)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
    render_mode: str | None = None
    method: ClassVar[str] = ""
    # keyword removed before 1.0 -> its replacement (dotted: a key of a *_kwargs dict); named in the error
    REMOVED_KWARGS: ClassVar[dict[str, str]] = {"cmd_mode": "cmd_kwargs.mode", "cmd_ema": "cmd_kwargs.ema"}

    def __init__(
        self,
        num_envs: int = 1,
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
        obs_norm: str = "none",
        device: str = "auto",
        engine: str = "auto",
        autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP,
        threads: int | str = "auto",
    ) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be a positive number of inner runs, got {num_envs}")
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            check_limit(name, int(value))
        check_mapping("cmd_kwargs", cmd_kwargs, "{'mode': 'ema', 'ema': 0.99}")
        check_names("obs_extras", obs_extras, "['val_acc']")
        unknown = set(obs_extras) - set(OBS_EXTRAS)
        if unknown:
            raise ValueError(f"unknown obs_extras {sorted(unknown)}; choose from {', '.join(OBS_EXTRAS)}")
        if obs_norm not in OBS_NORMS:
            raise ValueError(f"unknown obs_norm {obs_norm!r}; choose one of {', '.join(OBS_NORMS)}")
        ValidationReward.check(reward, val_size)
        message = unknown_kwargs_message(cmd_kwargs or {}, ("mode", "ema"), "cmd_kwargs")
        if message:
            raise ValueError(message)
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError as err:
            raise ValueError(f"unknown autoreset_mode {autoreset_mode!r}; choose one of "
                             f"{', '.join(m.value for m in AutoresetMode)}") from err
        self.threads = check_threads(threads)
        self.num_envs = int(num_envs)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.trainer = build_inner_run(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs,
                                         optim, device, self.num_envs, engine)
        self.modalities = self.trainer.dataset.modality_names
        self.obs_extras = tuple(obs_extras)
        self.obs_norm = obs_norm
        cmd = {"mode": "mean", "ema": 0.99, **(cmd_kwargs or {})}
        self.monitor = CumulativeDiscrepancy(self.num_envs, len(self.modalities), cmd["mode"], cmd["ema"],
                                             self.trainer.device)
        self.reward = ValidationReward(reward, val_size, self.trainer)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._val: dict[str, np.ndarray] | None = None  # None until reset: step() refuses to run before it
        self._done = np.zeros(self.num_envs, bool)
        self._needs_reset = np.zeros(self.num_envs, bool)  # NEXT_STEP: reset on the coming step
        self._clipped = np.zeros(self.num_envs, np.int64)

    def declare(self, action_map: ActionMap, extras: tuple[ObservationExtra, ...] = (),
                settings: dict[str, Any] | None = None) -> None:
        """Called once by the subclass's constructor: its action map, its observation extras
        (after the base's) and the settings policies may read. Sets the spaces and ``control``."""
        m = len(self.modalities)
        low = -1.0 if self.obs_norm == "chance" else 0.0
        val_acc = ObservationExtra("val_acc", (low,) * (m + 1), (1.0,) * (m + 1))  # fused, then per modality
        base = (val_acc,) if "val_acc" in self.obs_extras else ()
        self.action_map = action_map
        self.layout = ObservationLayout(m, int(np.prod(action_map.shape)), (*base, *extras), s_low=low)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, action_map.shape, dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(*self.layout.bounds(), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.control = ControlSpec(self.method, tuple(self.modalities), self.layout, action_map,
                                   self.trainer.cfg.epochs, {"obs_norm": self.obs_norm, **(settings or {})})
        self._prev_action = np.tile(self._neutral_action(), (self.num_envs, 1))

    # --- subclass hooks (called while stepping, never from the constructor) --------------
    @abstractmethod
    def _advance(self, actions: np.ndarray, stepping: np.ndarray) -> tuple[torch.Tensor, Infos]:
        """Run one decision interval of the runs in ``stepping`` (K,) under their ``actions``
        (K, A); return the (K,) mean training losses and each run's method-specific info."""

    def _on_reset(self, runs: list[int]) -> None:
        """Method-specific state at the start of the inner runs ``runs``."""

    def _neutral_action(self) -> np.ndarray:
        return np.zeros(self.layout.action_dim, np.float32)

    def _observe_batch(self, batch: Any, out: Any) -> None:
        """Trainer hook of every env: feed each iteration's unimodal logits to the CMD."""
        self.monitor.update(out.unimodal_logits, batch.labels, batch.masks)

    def _progress(self) -> np.ndarray:
        """(K,) fraction of each inner run done (DUS: iterations; BSS overrides with epochs)."""
        return self.trainer.iteration.numpy() / self.trainer.total_iterations

    def _finished(self) -> np.ndarray:
        return self.trainer.done.numpy()

    def _extra_values(self, run: int) -> dict[str, np.ndarray]:
        """Run ``run``'s values of the declared observation extras; subclasses add theirs."""
        if "val_acc" not in self.obs_extras:
            return {}
        acc = np.array([self._val["acc"][run], *(self._val[f"acc_{n}"][run] for n in self.modalities)])
        if self.obs_norm == "chance":
            acc = chance_normalised(acc[None], self.trainer.dataset.classes_of_runs(self.num_envs)[[run]])[0]
        return {"val_acc": acc}

    def _method_info(self, run: int) -> dict[str, Any]:
        """Method-specific info of run ``run`` between steps (after a reset)."""
        return {}

    # --- the K-run API ----------------------------------------------------------------
    @scoped_threads
    def reset_runs(self, seed: int | Sequence[int | None] | None = None,
                   runs: Sequence[int] | None = None) -> tuple[np.ndarray, Infos]:
        """Reset ``runs`` (default: all); observations of all runs and one info dict per run
        (empty for runs not reset)."""
        runs, seeds = self._reset_args(seed, runs)
        inner = []
        for run, s in zip(runs, seeds, strict=True):
            if s is not None or self._rngs[run] is None:
                self._rngs[run], _ = seeding.np_random(s)
            inner.append(int(self._rngs[run].integers(0, 2**31 - 1)))
        self.trainer.reset(inner, runs)
        self.monitor.reset(runs)
        self._on_reset(runs)
        self._prev_action[runs] = self._neutral_action()
        val = self.reward.measure(self.trainer)
        if self._val is None:
            self._val = val
        for key, values in val.items():
            self._val[key][runs] = values[runs]
        self._done[runs], self._needs_reset[runs], self._clipped[runs] = False, False, 0
        s_hat = self.monitor.s_hat.cpu().numpy()  # one device read for every run's observation and info
        infos: Infos = [{} for _ in range(self.num_envs)]
        for run in runs:
            infos[run] = self._info(run, s_hat[run], self._method_info(run))
        return self._observations(s_hat), infos

    @scoped_threads
    def step_runs(self, actions: np.ndarray, active: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Infos]:
        """``step`` with one info dict per run (Stable-Baselines3's format).

        ``active`` (K,) bool, default all: only these runs step. The others rest — no training,
        reward 0, not terminated, an empty info, their observation unchanged, their action
        ignored — so that, with autoreset disabled, the runs still going can finish after some
        have ended (an ended run's episode is over; it is never fed another action)."""
        if self._val is None:
            raise RuntimeError("call reset() before step(): no inner training run has started")
        actions, active = self._step_args(actions, active)
        if self.autoreset_mode == AutoresetMode.DISABLED and (self._done & active).any():
            ended = np.flatnonzero(self._done & active).tolist()
            raise RuntimeError(f"inner run(s) {ended} have ended (terminated=True); reset them before stepping, "
                               "let them rest (step_runs(actions, active=mask)) or use autoreset_mode='SameStep'")
        stepping = ~self._needs_reset & active
        checked = np.tile(self._neutral_action(), (self.num_envs, 1)).reshape(self.action_space.shape)
        clipped = np.zeros(self.num_envs, np.int64)
        for k in np.flatnonzero(stepping):
            checked[k], clipped[k] = check_action(actions[k], self.single_action_space)
        self._clipped += clipped
        losses, method_infos = self._advance(checked, stepping)
        self._prev_action[stepping] = checked.reshape(self.num_envs, -1)[stepping]
        loss = losses.detach().float().cpu().numpy()
        diverged = stepping & ~np.isfinite(loss)
        cur = self.reward.measure(self.trainer)
        trained = stepping & ~diverged
        finished = self._finished()
        rewards = np.where(trained, self.reward.gain(self._val, cur, finished), 0.0)
        for key in self._val:
            self._val[key][trained] = cur[key][trained]
        terminated = stepping & (diverged | finished)
        self._done |= terminated
        s_hat = self.monitor.s_hat.cpu().numpy()
        infos: Infos = [{} for _ in range(self.num_envs)]
        for k in np.flatnonzero(stepping):
            infos[k] = self._info(k, s_hat[k], method_infos[k], train_loss=float(loss[k]),
                                  diverged=bool(diverged[k]), clipped=int(clipped[k]),
                                  clipped_episode=int(self._clipped[k]))
        finished = np.flatnonzero(terminated & ~diverged).tolist()
        for k, metrics in zip(finished, self.evaluate_runs("test", finished), strict=True):
            infos[k]["test"] = metrics
        obs = self._observations(s_hat)
        resetting = np.flatnonzero(self._needs_reset & active).tolist()
        if resetting:  # NEXT_STEP: runs that ended last step start now, with reward 0
            obs, reset_infos = self.reset_runs(runs=resetting)
            for k in resetting:
                infos[k] = reset_infos[k]
        if self.autoreset_mode == AutoresetMode.SAME_STEP and terminated.any():
            ended = np.flatnonzero(terminated).tolist()
            final_obs = obs.copy()
            obs, reset_infos = self.reset_runs(runs=ended)
            for k in ended:
                infos[k] = {**reset_infos[k], "final_obs": final_obs[k], "final_info": infos[k]}
        elif self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._needs_reset = terminated | (self._needs_reset & ~active)  # a resting run resets when it next steps
        return obs, rewards.astype(np.float64), terminated, np.zeros(self.num_envs, bool), infos

    @scoped_threads
    def evaluate_runs(self, split: str = "test", runs: Sequence[int] | None = None) -> list[dict[str, float]]:
        """Full metrics (acc, macro-F1, mAP; fused and per modality) of each run's current model."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        runs = list(range(self.num_envs)) if runs is None else list(runs)
        if not runs:
            return []
        pred, y = self.trainer.predict(getattr(self.trainer.dataset, split))
        return [prediction_metrics(pred.fused[k], [z[k] for z in pred.unimodal], y[k] if y.dim() == 2 else y,
                                   self.modalities) for k in runs]

    # --- observation and info ---------------------------------------------------------
    def _observations(self, s_hat: np.ndarray) -> np.ndarray:
        """Every run's observation from the (K, M) cumulative scores ``s_hat`` (``obs_norm="chance"``:
        chance-normalised, so d is too)."""
        if self.obs_norm == "chance":
            s_hat = chance_normalised(s_hat, self.trainer.dataset.classes_of_runs(self.num_envs),
                                      self.monitor.seen.cpu().numpy())
        progress = self._progress()
        return np.stack([self.layout.assemble(s_hat[k], progress[k], self._prev_action[k], self._extra_values(k))
                         for k in range(self.num_envs)])

    def _info(self, run: int, s_hat: np.ndarray, method_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """What a person inspects about run ``run`` (``s_hat``: its (M,) cumulative scores)."""
        return {
            "iteration": int(self.trainer.iteration[run]),
            "epoch": int(self.trainer.epoch[run]),
            "s_hat": dict(zip(self.modalities, s_hat.tolist(), strict=True)),
            "d": dict(zip(self.modalities, modality_discrepancy(s_hat).tolist(), strict=True)),
            "val_acc": float(self._val["acc"][run]),
            "val_acc_modality": {n: float(self._val[f"acc_{n}"][run]) for n in self.modalities},
            **self.trainer.run_info(run),
            **method_info,
            **extra,
        }

    # --- checkpoints ----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything that decides the rest of every run's episode and later episodes (tensors,
        numbers, strings and lists only): the trainer, the CMD, reward baselines, per-run env
        generators and counters. Subclasses extend it with ``{**super().get_state(), ...}``."""
        return copy.deepcopy({
            "identity": self._identity(),
            "rngs": [None if r is None else r.bit_generator.state for r in self._rngs],
            "trainer": self.trainer.state_dict(),
            "monitor": self.monitor.state_dict(),
            "prev_action": torch.from_numpy(self._prev_action.copy()),
            "val": None if self._val is None else {k: torch.from_numpy(v.copy()) for k, v in self._val.items()},
            "done": self._done.tolist(), "needs_reset": self._needs_reset.tolist(), "clipped": self._clipped.tolist(),
        })

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``get_state()``'s snapshot; refuses one taken on a different env."""
        saved, mine = state["identity"], self._identity()
        if saved != mine:
            diff = "; ".join(f"{k}: saved {saved.get(k)!r}, this env {mine.get(k)!r}"
                             for k in {**saved, **mine} if saved.get(k) != mine.get(k))
            raise ValueError(f"this state was saved by a different env ({diff})")
        state = copy.deepcopy(state)
        self._rngs = []
        for r in state["rngs"]:
            rng = None
            if r is not None:
                rng = np.random.Generator(getattr(np.random, r["bit_generator"])())
                rng.bit_generator.state = r
            self._rngs.append(rng)
        self.trainer.load_state_dict(state["trainer"])
        self.monitor.load_state_dict(state["monitor"])
        self._prev_action = state["prev_action"].numpy().copy()
        self._val = None if state["val"] is None else {k: v.numpy().copy() for k, v in state["val"].items()}
        self._done = np.array(state["done"], bool)
        self._needs_reset = np.array(state["needs_reset"], bool)
        self._clipped = np.array(state["clipped"], np.int64)

    def _identity(self) -> dict[str, Any]:
        """What must match for a state to fit this env: class, data, learner, spaces, K."""
        d = self.trainer.dataset
        return {"env": f"{self.method}Env", "dataset": d.name, "classes": d.num_classes,
                "split_sizes": [len(d.train), len(d.val), len(d.test)], "runs": self.num_envs,
                "modalities": list(self.modalities), "learner": self.trainer.cfg.learner,
                "action_shape": list(self.single_action_space.shape),
                "observation_shape": list(self.single_observation_space.shape)}
