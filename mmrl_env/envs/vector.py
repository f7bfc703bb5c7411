"""K inner training runs as one Gymnasium ``VectorEnv``: the loop every mmrl env runs on.

Run k is an episode of its own (one inner training run, its own seed, CMD, reward baseline
and method state); the K runs train as one batched engine step (:mod:`mmrl_env.inner_run`).
The single-run envs (``gym.make("DUS-…")``) are views of this class with K = 1, so there is one
code path. DUS and BSS subclass it: they hand their action map (and observation extras and
settings) to the constructor, and say what one decision interval trains (``_advance``).

Autoreset (Gymnasium's ``AutoresetMode``): ``SAME_STEP`` by default, as Stable-Baselines3
expects — a run that ends is reset within the same ``step``, the returned observation is
the new run's first, and ``info["final_obs"]`` / ``info["final_info"]`` hold the ended run's
last observation and info. ``NEXT_STEP`` (Gymnasium's default for its own vector envs) and
``DISABLED`` are available through ``autoreset_mode=``. With ``DISABLED`` a caller that runs
one episode per run (``mmrl_training.rollout.run_episodes``) lets the runs that ended rest while the
others go on: ``step_runs(actions, active=mask)`` steps only the runs in ``mask``.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from mmrl_env.engine.batch import VectorBatch, VectorStepOutput
from mmrl_env.envs.actions import check_action
from mmrl_env.envs.control import ActionMap, ControlSpec
from mmrl_env.envs.episodes import Episodes
from mmrl_env.envs.layout import ObservationExtra, env_layout
from mmrl_env.envs.reward import ValidationReward
from mmrl_env.envs.runs_api import Infos, PerRunVectorEnv
from mmrl_env.envs.settings import check_env_settings
from mmrl_env.inner_run.build import build_inner_run
from mmrl_env.monitors.cmd import CumulativeDiscrepancy, chance_normalised, modality_discrepancy
from mmrl_env.threads import check_threads, scoped_threads

SPLITS = ("train", "val", "test")
MapT = TypeVar("MapT", bound=ActionMap)


class MultimodalTrainingVectorEnv(PerRunVectorEnv, Generic[MapT]):
    """K inner runs. Keyword arguments are the single env's (see ``MultimodalTrainingEnv``)
    plus ``num_envs`` (K), ``autoreset_mode`` and ``engine`` (``auto``: the batched engine
    where it covers the learner and encoders, else runs in sequence; ``batched``;
    ``sequential``).

    The first arguments are the subclass's (positional only, so no env id accepts them):
    ``action_map(M, B)`` builds its action map once the data's modality count M is known,
    ``extras`` are its observation entries after the shared ones, ``settings`` what a policy
    may read of it (``control.settings``)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
    render_mode: str | None = None
    method: ClassVar[str] = ""
    # keyword removed before 1.0 -> its replacement (dotted: a key of a *_kwargs dict); named in the error
    REMOVED_KWARGS: ClassVar[dict[str, str]] = {"cmd_mode": "cmd_kwargs.mode", "cmd_ema": "cmd_kwargs.ema"}

    def __init__(
        self,
        action_map: Callable[[int, int], MapT],
        extras: tuple[ObservationExtra, ...] = (),
        settings: Mapping[str, Any] | None = None,
        /,
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
        self.autoreset_mode, cmd = check_env_settings(num_envs, epochs, batch_size, cmd_kwargs, obs_extras, obs_norm,
                                                      reward, val_size, autoreset_mode)
        self.threads = check_threads(threads)
        self.num_envs = int(num_envs)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.inner_run = build_inner_run(dataset, dataset_kwargs, learner, learner_kwargs, batch_size, epochs,
                                       optim, device, self.num_envs, engine)
        self.modalities = self.inner_run.dataset.modality_names
        self.obs_extras, self.obs_norm = tuple(obs_extras), obs_norm
        self.monitor = CumulativeDiscrepancy(self.num_envs, len(self.modalities), cmd["mode"], cmd["ema"],
                                             self.inner_run.device)
        self.reward = ValidationReward(reward, val_size, self.inner_run)
        # what a policy may know: the action map, the observation layout, the run's length, settings
        self.action_map: MapT = action_map(len(self.modalities), self.inner_run.cfg.batch_size)
        self.layout = env_layout(len(self.modalities), int(np.prod(self.action_map.shape)), self.obs_extras,
                                 obs_norm, extras)
        self.control = ControlSpec(self.method, tuple(self.modalities), self.layout, self.action_map,
                                   self.inner_run.cfg.epochs, {"obs_norm": obs_norm, **(settings or {})})
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, self.action_map.shape, dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(*self.layout.bounds(), dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.episodes = Episodes(self.num_envs, self.action_map.neutral)

    @property
    def ended(self) -> np.ndarray:
        """(K,) bool: the runs whose episode has ended (terminated) and that were not reset since."""
        return self.episodes.done.copy()

    # --- subclass hooks (called while stepping, never from the constructor) --------------
    @abstractmethod
    def _advance(self, actions: np.ndarray, stepping: np.ndarray) -> tuple[torch.Tensor, Infos]:
        """Run one decision interval of the runs in ``stepping`` (K,) under their ``actions``
        (K, A); return the (K,) mean training losses and each run's method-specific info."""

    def _on_reset(self, runs: list[int]) -> None:
        """Method-specific state at the start of the inner runs ``runs``."""

    def _observe_batch(self, batch: VectorBatch, out: VectorStepOutput) -> None:
        """Inner-run hook of every env: feed each iteration's unimodal logits to the CMD."""
        self.monitor.update(out.unimodal_logits, batch.labels, batch.masks)

    def _progress(self) -> np.ndarray:
        """(K,) fraction of each inner run done (DUS: iterations; BSS overrides with epochs)."""
        return self.inner_run.iteration.numpy() / self.inner_run.total_iterations

    def _finished(self) -> np.ndarray:
        return self.inner_run.done.numpy()

    def _extra_values(self, run: int) -> dict[str, np.ndarray]:
        """Run ``run``'s values of the declared observation extras; subclasses add theirs."""
        if "val_acc" not in self.obs_extras:
            return {}
        val = self.episodes.scores
        acc = np.array([val["acc"][run], *(val[f"acc_{n}"][run] for n in self.modalities)])
        if self.obs_norm == "chance":
            acc = chance_normalised(acc[None], self.inner_run.dataset.classes_of_runs(self.num_envs)[[run]])[0]
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
        self.inner_run.reset([self.episodes.inner_seed(run, s) for run, s in zip(runs, seeds, strict=True)], runs)
        self.monitor.reset(runs)
        self._on_reset(runs)
        self.episodes.start(runs, self.reward.measure(self.inner_run))
        s_hat = self.monitor.s_hat.cpu().numpy()  # one device read for every run's observation and info
        infos: Infos = [{} for _ in range(self.num_envs)]
        for run in runs:
            infos[run] = self._info(run, s_hat[run], self._method_info(run))
        return self._observations(s_hat), infos

    @scoped_threads
    def step_runs(self, actions: Any, active: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Infos]:
        """``step`` with one info dict per run (Stable-Baselines3's format). ``actions``: one
        per run, an array (K, ...) or a sequence of K actions, each checked as ``step`` checks it.

        ``active`` (K,) bool, default all: only these runs step. The others rest — no training,
        reward 0, not terminated, an empty info, their observation unchanged, their action
        ignored — so that, with autoreset disabled, the runs still going can finish after some
        have ended (an ended run's episode is over; it is never fed another action)."""
        ep, val = self.episodes, self.episodes.scores
        actions, active = self._step_args(actions, active)
        if self.autoreset_mode == AutoresetMode.DISABLED and (ep.done & active).any():
            ended = np.flatnonzero(ep.done & active).tolist()
            raise RuntimeError(f"inner run(s) {ended} have ended (terminated=True); reset them before stepping, "
                               "let them rest (step_runs(actions, active=mask)) or use autoreset_mode='SameStep'")
        stepping = ~ep.needs_reset & active
        checked, clipped = self._checked_actions(actions, stepping)
        losses, method_infos = self._advance(checked, stepping)
        ep.prev_action[stepping] = checked.reshape(self.num_envs, -1)[stepping]
        loss = losses.detach().float().cpu().numpy()
        diverged = stepping & ~np.isfinite(loss)
        cur = self.reward.measure(self.inner_run)
        trained = stepping & ~diverged
        finished = self._finished()
        rewards = np.where(trained, self.reward.gain(val, cur, finished), 0.0)
        for key in val:
            val[key][trained] = cur[key][trained]
        terminated = stepping & (diverged | finished)
        ep.done |= terminated
        s_hat = self.monitor.s_hat.cpu().numpy()
        infos: Infos = [{} for _ in range(self.num_envs)]
        for k in np.flatnonzero(stepping).tolist():
            infos[k] = self._info(k, s_hat[k], method_infos[k], train_loss=float(loss[k]),
                                  diverged=bool(diverged[k]), clipped=int(clipped[k]),
                                  clipped_episode=int(ep.clipped[k]))
        finished_runs = np.flatnonzero(terminated & ~diverged).tolist()
        for k, metrics in zip(finished_runs, self.evaluate_runs("test", finished_runs), strict=True):
            infos[k]["test"] = metrics
        obs, infos = self._autoreset(self._observations(s_hat), infos, terminated, active)
        return obs, rewards.astype(np.float64), terminated, np.zeros(self.num_envs, bool), infos

    def _checked_actions(self, actions: Any, stepping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The stepping runs' actions as float32 arrays clipped into the action space (the
        resting runs': the neutral action), and how many entries of each needed clipping."""
        checked = np.tile(self.action_map.neutral, (self.num_envs, 1)).reshape(self.action_space.shape)
        clipped = np.zeros(self.num_envs, np.int64)
        for k in np.flatnonzero(stepping).tolist():
            checked[k], clipped[k] = check_action(actions[k], self.single_action_space)
        self.episodes.clipped += clipped
        return checked, clipped

    def _autoreset(self, obs: np.ndarray, infos: Infos, terminated: np.ndarray,
                   active: np.ndarray) -> tuple[np.ndarray, Infos]:
        """Observations and infos after this step's resets, as ``autoreset_mode`` has them."""
        resetting = np.flatnonzero(self.episodes.needs_reset & active).tolist()
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
            ep = self.episodes  # a resting run resets when it next steps
            ep.needs_reset = terminated | (ep.needs_reset & ~active)
        return obs, infos

    @scoped_threads
    def evaluate_runs(self, split: str = "test", runs: Sequence[int] | None = None) -> list[dict[str, float]]:
        """Full metrics (acc, macro-F1, mAP; fused and per modality) of each run's current model."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        runs = list(range(self.num_envs)) if runs is None else list(runs)
        return self.inner_run.evaluate(getattr(self.inner_run.dataset, split), runs)

    # --- observation and info ---------------------------------------------------------
    def _observations(self, s_hat: np.ndarray) -> np.ndarray:
        """Every run's observation from the (K, M) cumulative scores ``s_hat`` (``obs_norm="chance"``:
        chance-normalised, so d is too)."""
        if self.obs_norm == "chance":
            s_hat = chance_normalised(s_hat, self.inner_run.dataset.classes_of_runs(self.num_envs),
                                      self.monitor.seen.cpu().numpy())
        progress = self._progress()
        prev = self.episodes.prev_action
        return np.stack([self.layout.assemble(s_hat[k], progress[k], prev[k], self._extra_values(k))
                         for k in range(self.num_envs)])

    def _info(self, run: int, s_hat: np.ndarray, method_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """What a person inspects about run ``run`` (``s_hat``: its (M,) cumulative scores)."""
        val = self.episodes.scores
        return {
            "iteration": int(self.inner_run.iteration[run]),
            "epoch": int(self.inner_run.epoch[run]),
            "s_hat": dict(zip(self.modalities, s_hat.tolist(), strict=True)),
            "d": dict(zip(self.modalities, modality_discrepancy(s_hat).tolist(), strict=True)),
            "val_acc": float(val["acc"][run]),
            "val_acc_modality": {n: float(val[f"acc_{n}"][run]) for n in self.modalities},
            **self.inner_run.run_info(run),
            **method_info,
            **extra,
        }

    # --- checkpoints ----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything that decides the rest of every run's episode and later episodes (tensors,
        numbers, strings and lists only): the inner run (under the key ``trainer``, as checkpoints
        have it), the CMD, reward baselines, per-run env generators and counters. Subclasses
        extend it with ``{**super().get_state(), ...}``."""
        return copy.deepcopy({"identity": self._identity(), "trainer": self.inner_run.state_dict(),
                              "monitor": self.monitor.state_dict(), **self.episodes.state_dict()})

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``get_state()``'s snapshot; refuses one taken on a different env."""
        saved, mine = state["identity"], self._identity()
        if saved != mine:
            diff = "; ".join(f"{k}: saved {saved.get(k)!r}, this env {mine.get(k)!r}"
                             for k in {**saved, **mine} if saved.get(k) != mine.get(k))
            raise ValueError(f"this state was saved by a different env ({diff})")
        state = copy.deepcopy(state)
        self.episodes.load_state_dict(state)
        self.inner_run.load_state_dict(state["trainer"])
        self.monitor.load_state_dict(state["monitor"])

    def _identity(self) -> dict[str, Any]:
        """What must match for a state to fit this env: class, data, learner, spaces, K."""
        d = self.inner_run.dataset
        return {"env": f"{self.method}Env", "dataset": d.name, "classes": d.num_classes,
                "split_sizes": [len(d.train), len(d.val), len(d.test)], "runs": self.num_envs,
                "modalities": list(self.modalities), "learner": self.inner_run.cfg.learner,
                "action_shape": list(self.single_action_space.shape),
                "observation_shape": list(self.single_observation_space.shape)}
