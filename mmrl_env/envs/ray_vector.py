"""Inner runs in Ray actors, seen by the learner as ONE Gymnasium ``VectorEnv``.

Why: a policy trained on real data needs hundreds of inner runs, more than one machine holds.
Each actor hosts one :class:`~mmrl_env.envs.vector.MultimodalTrainingVectorEnv` with K runs
(``gym.make_vec`` of the same id and keyword arguments), on a GPU of its own or on CPU cores;
the learner sees actors × K envs, env ``i`` being run ``i - offset[a]`` of actor ``a`` (actors
in order, each a contiguous block). Observations and actions move in one remote call per
actor per step, all actors stepping at once. Seeds map as in the in-process env: ``reset(
seed=s)`` gives env ``i`` the seed ``s + i``, a list gives env ``i`` its ``i``-th entry, so
actors × K runs play what one in-process env with the same seeds plays (float tolerance).

Autoreset: the inner env's (``autoreset_mode=``, ``SAME_STEP`` by default), unchanged.

Faults. Actors are created with ``max_restarts``, so Ray restarts a dead one (killed,
OOM, lost node); its constructor rebuilds the env (and loads the data again). A call that
fails with ``RayActorError`` (``ActorDiedError``, ``ActorUnavailableError``) or
``OutOfMemoryError`` ends the episodes of all that actor's runs as *truncated*: reward 0
(nothing is invented), ``truncated=True``, ``terminated=False``. The actor's runs are reset
with fresh seeds from a driver-side generator (seeded by the first ``reset``), and the
observation follows the autoreset mode: ``SAME_STEP`` returns the new runs' first
observation, with ``info["final_obs"]`` = the last observation the agent saw and
``info["final_info"]`` = that run's last info plus ``actor_restarted``; ``NEXT_STEP`` returns
the last observation now and the new first one at the next step (reward 0); ``DISABLED``
returns the last observation and the runs must be reset by the caller. Every fault is logged
(``logging`` and a ``RuntimeWarning``) and counted in ``restarts``. If Ray cannot restart the
actor (``max_restarts`` used up), the error is raised.

Checkpoints: ``get_state``/``set_state`` gather every actor's state (tensors and plain
values) and add the driver's (the recovery generator, the last observations), so
``train_agent.py --resume`` continues a Ray run; the actor layout must match.

``ray`` is an optional dependency (``pip install -e '.[ray]'``), imported only here and only
when a :class:`RayVectorEnv` is built.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from mmrl_env.envs.runs_api import Infos, PerRunVectorEnv
from mmrl_env.extras import require

if TYPE_CHECKING:
    from mmrl_env.envs.vector import MultimodalTrainingVectorEnv

log = logging.getLogger(__name__)
FAULT_KEY = "actor_restarted"


def import_ray() -> Any:
    """``ray``, or a ``MissingExtraError`` that names the extra installing it."""
    return require("ray", "running inner runs in Ray actors")


def init_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to the cluster at ``address`` (``ray start --head`` prints it; ``auto`` finds a
    local one), or start a local one with ``num_cpus`` CPUs when ``address`` is ``None``. A
    process that is already connected keeps its connection."""
    ray = import_ray()
    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
    return ray


def split_runs(num_envs: int, num_actors: int) -> list[int]:
    """``num_envs`` runs over ``num_actors`` actors as evenly as possible (the first ones get one more)."""
    if num_actors < 1 or num_envs < num_actors:
        raise ValueError(f"{num_envs} env(s) cannot be spread over {num_actors} Ray actor(s): every actor hosts "
                         "at least one run (use at most as many actors as envs)")
    q, r = divmod(num_envs, num_actors)
    return [q + (a < r) for a in range(num_actors)]


class ActorRestarted(RuntimeError):
    """An actor answered from a fresh instance: it died, unseen, between two calls."""


class RunsHost:
    """What lives in one actor: an mmrl vector env of K runs. A plain class (``ray.remote``
    wraps it when actors are made), so this module needs no ``ray`` to import."""

    def __init__(self, env_id: str, num_envs: int, env_kwargs: dict[str, Any], threads: int | None) -> None:
        import torch

        from mmrl_env.envs.registration import register_envs
        from mmrl_env.threads import set_default_threads

        register_envs()  # the ids, in this process
        if threads:
            torch.set_num_threads(threads)
            set_default_threads(threads)  # the actor's inner training uses them too
        venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
        self.venv = cast("MultimodalTrainingVectorEnv[Any]", venv)  # what an mmrl id's vector entry point makes
        # False in a fresh (or restarted) actor until its runs are reset or set: a call queued while
        # Ray restarted the actor then answers None, which the driver treats as the actor's death
        self.ready = False

    def describe(self) -> dict[str, Any]:
        v = self.venv
        return {"single_observation_space": v.single_observation_space, "single_action_space": v.single_action_space,
                "autoreset_mode": v.autoreset_mode, "control": v.control, "spec": v.spec,
                "modalities": tuple(v.modalities), "pid": os.getpid()}

    def reset_runs(self, seeds: list[int | None], runs: list[int] | None) -> tuple[np.ndarray, Infos] | None:
        if not self.ready and runs is not None and len(runs) < self.venv.num_envs:
            return None  # restarted: every run needs a reset, not just these
        out = self.venv.reset_runs(seed=seeds, runs=runs)
        self.ready = True
        return out

    def step_runs(self, actions: Any, active: np.ndarray) -> tuple[Any, ...] | None:
        return self.venv.step_runs(actions, active=active) if self.ready else None

    def evaluate_runs(self, split: str, runs: list[int]) -> list[dict[str, float]]:
        return self.venv.evaluate_runs(split, runs)

    def get_state(self) -> dict[str, Any] | None:
        return self.venv.get_state() if self.ready else None

    def set_state(self, state: dict[str, Any]) -> None:
        self.venv.set_state(state)
        self.ready = True

    def pid(self) -> int:
        return os.getpid()


class RayVectorEnv(PerRunVectorEnv):
    """``num_envs`` inner runs of ``env_id`` spread over ``num_actors`` Ray actors (see the
    module docstring). ``env_kwargs`` are the env's own (``autoreset_mode`` included).
    Each actor reserves ``num_cpus`` CPUs and ``num_gpus`` GPUs (default: 1 when the env's
    ``device`` is CUDA, or ``auto`` on a cluster that has GPUs; 0 otherwise) and runs torch
    with ``threads`` threads (default ``num_cpus``). A dead actor is restarted up to
    ``max_restarts`` times (-1: always) and waited for ``restart_timeout`` seconds. Connect
    to Ray first (:func:`init_ray`); without a connection a local cluster is started."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}
    render_mode: str | None = None

    def __init__(self, env_id: str, num_envs: int, num_actors: int = 1, env_kwargs: dict[str, Any] | None = None,
                 *, num_cpus: float = 1, num_gpus: float | None = None, threads: int | None = None,
                 max_restarts: int = 4, restart_timeout: float = 600.0) -> None:
        ray = init_ray()
        self._ray = ray
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs or {})
        self.runs_per_actor = split_runs(int(num_envs), int(num_actors))
        self.offsets = np.cumsum([0, *self.runs_per_actor]).tolist()
        self.num_envs, self.num_actors = int(num_envs), int(num_actors)
        if num_gpus is None:
            num_gpus = self._default_gpus(str(self.env_kwargs.get("device", "auto")))
        threads = threads if threads is not None else max(int(num_cpus), 1)
        host = ray.remote(RunsHost).options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts,
                                            max_task_retries=0)
        self.actors = [host.remote(env_id, k, self.env_kwargs, threads) for k in self.runs_per_actor]
        refs = [a.describe.remote() for a in self.actors]
        if len(ray.wait(refs, num_returns=len(refs), timeout=120)[0]) < len(refs):  # still building, or unplaceable
            log.warning("waiting for Ray to start %d actor(s) of %s CPU and %s GPU each; the cluster has %s in all, "
                        "%s free (actors of other envs that are still open hold theirs)", self.num_actors, num_cpus,
                        num_gpus, ray.cluster_resources(), ray.available_resources())
        try:
            described = ray.get(refs)
        except Exception:  # a bad setting fails in every actor's constructor: raise its error, leave no actors
            self.close()
            raise
        d = described[0]
        self.autoreset_mode = d["autoreset_mode"]
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.control, self.spec, self.modalities = d["control"], d["spec"], d["modalities"]
        self.single_observation_space, self.single_action_space = d["single_observation_space"], \
            d["single_action_space"]
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.restarts = [0] * self.num_actors  # faults recovered, per actor
        self.restart_timeout = float(restart_timeout)
        self._errors = (ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError)
        self._recovery_rng = np.random.default_rng()
        self._obs = np.zeros((self.num_envs, *self.single_observation_space.shape), self.single_observation_space.dtype)
        self._last_infos: Infos = [{} for _ in range(self.num_envs)]
        self._pending: list[tuple[np.ndarray, dict[str, Any]] | None] = [None] * self.num_envs  # NEXT_STEP
        self._ended = np.zeros(self.num_envs, bool)  # DISABLED: truncated by a fault, to be reset by the caller
        self._started = False

    def _default_gpus(self, device: str) -> float:
        """A GPU per actor when the env trains on CUDA (``auto``: when the cluster has GPUs);
        a share of one when the cluster has fewer GPUs than actors, so that no actor waits forever."""
        gpus = float(self._ray.cluster_resources().get("GPU", 0))
        if device.startswith("cuda") and gpus == 0:
            raise ValueError(f"device={device!r}, but the Ray cluster has no GPU; use device=cpu or add GPU nodes")
        if not (device.startswith("cuda") or device == "auto") or gpus == 0:
            return 0
        return 1 if gpus >= self.num_actors else gpus / self.num_actors

    def _block(self, a: int) -> slice:
        return slice(self.offsets[a], self.offsets[a + 1])

    def _gather(self, refs: dict[int, Any]) -> tuple[dict[int, Any], dict[int, BaseException]]:
        """Results of the per-actor calls ``refs`` (already submitted: they run concurrently),
        and the actors whose call failed because the actor died."""
        done, failed = {}, {}
        for a, ref in refs.items():
            try:
                done[a] = self._ray.get(ref)
            except self._errors as err:
                failed[a] = err
            else:
                if done[a] is None:  # answered by a restarted actor (it died between two calls)
                    failed[a] = ActorRestarted(f"actor {a} was restarted since its last call")
                    del done[a]
        return done, failed

    # --- the vector-env API ------------------------------------------------------------
    def reset_runs(self, seed: int | Sequence[int | None] | None = None,
                   runs: Sequence[int] | None = None) -> tuple[np.ndarray, Infos]:
        """As ``MultimodalTrainingVectorEnv.reset_runs``, over all actors' runs (global indices)."""
        runs, seeds = self._reset_args(seed, runs)
        if not self._started:  # the recovery seeds follow the first seeds (fresh entropy without seeds)
            self._recovery_rng = np.random.default_rng(None if seeds[0] is None else [seeds[0], 7919])
            self._started = True
        per_actor: dict[int, tuple[list[int], list[int | None]]] = {}
        for r, s in zip(runs, seeds, strict=True):
            a, k = self._owner(r)
            local, ss = per_actor.setdefault(a, ([], []))
            local.append(k)
            ss.append(s)
        refs = {a: self.actors[a].reset_runs.remote(ss, local) for a, (local, ss) in per_actor.items()}
        done, failed = self._gather(refs)
        for a, err in failed.items():  # a fresh actor: reset all its runs, the asked ones with their seeds
            local, ss = per_actor[a]
            asked = dict(zip(local, ss, strict=True))
            all_seeds = [asked.get(k, self._recovery_seed()) for k in range(self.runs_per_actor[a])]
            self._log_fault(a, err, "reset")
            done[a] = self._retry(a, "reset_runs", all_seeds, None)
        infos: Infos = [{} for _ in range(self.num_envs)]
        for a, (obs, actor_infos) in done.items():
            block = self._block(a)
            self._obs[block] = obs
            for k, info in enumerate(actor_infos):
                if info:
                    i = self.offsets[a] + k
                    infos[i] = info if a not in failed else {**info, FAULT_KEY: True}
                    self._remember(i, info)
                    self._pending[i], self._ended[i] = None, False
        return self._obs.copy(), infos

    def step_runs(self, actions: Any, active: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Infos]:
        """As ``MultimodalTrainingVectorEnv.step_runs``: one remote call per actor with its block
        of actions; runs of a dead actor come back truncated (module docstring)."""
        if not self._started:
            raise RuntimeError("call reset() before step(): no inner training run has started")
        actions, active = self._step_args(actions, active)
        if (self._ended & active).any():
            ended = np.flatnonzero(self._ended & active).tolist()
            raise RuntimeError(f"inner run(s) {ended} were truncated when their Ray actor died; reset them "
                               "before stepping them again, or let them rest (active=mask)")
        pending = np.array([p is not None for p in self._pending])
        stepping = active & ~pending
        refs = {a: self.actors[a].step_runs.remote(actions[self._block(a)], stepping[self._block(a)])
                for a in range(self.num_actors) if stepping[self._block(a)].any()}
        done, failed = self._gather(refs)
        obs = self._obs.copy()
        rewards = np.zeros(self.num_envs)
        terminated, truncated = np.zeros(self.num_envs, bool), np.zeros(self.num_envs, bool)
        infos: Infos = [{} for _ in range(self.num_envs)]
        for a, (o, r, te, tr, actor_infos) in done.items():
            block = self._block(a)
            obs[block], rewards[block], terminated[block], truncated[block] = o, r, te, tr
            infos[block] = actor_infos
        self._start_pending(active, obs, infos)
        for a, err in failed.items():
            self._recover(a, err, obs, truncated, infos)
        for i, info in enumerate(infos):
            if info:
                self._remember(i, info)
        self._obs = obs
        return obs.copy(), rewards, terminated, truncated, infos

    def evaluate_runs(self, split: str = "test", runs: Sequence[int] | None = None) -> list[dict[str, float]]:
        """Full metrics of each run's current model (``MultimodalTrainingVectorEnv.evaluate_runs``)."""
        runs = list(range(self.num_envs)) if runs is None else [int(r) for r in runs]
        where = [self._owner(r) for r in runs]
        asked: dict[int, list[int]] = {}
        for a, k in where:
            asked.setdefault(a, []).append(k)
        refs = {a: self.actors[a].evaluate_runs.remote(split, local) for a, local in asked.items()}
        metrics = dict(zip(refs, self._ray.get(list(refs.values())), strict=True))
        return [metrics[a][asked[a].index(k)] for a, k in where]

    def _owner(self, i: int) -> tuple[int, int]:
        """(actor, its run) of env ``i``."""
        if not 0 <= i < self.num_envs:
            raise IndexError(f"env {i} out of range: this env has {self.num_envs}")
        a = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return a, i - self.offsets[a]

    def close(self, **kwargs: Any) -> None:
        """End the actors (the Ray connection stays: the caller opened it)."""
        for actor in getattr(self, "actors", []):
            self._ray.kill(actor, no_restart=True)
        self.actors = []
        self.closed = True

    # --- faults ------------------------------------------------------------------------
    def _recovery_seed(self) -> int:
        return int(self._recovery_rng.integers(0, 2**31 - 1))

    def _log_fault(self, a: int, err: BaseException, during: str) -> None:
        self.restarts[a] += 1
        message = (f"Ray actor {a} (envs {self.offsets[a]}..{self.offsets[a + 1] - 1}) died during {during} "
                   f"({type(err).__name__}); Ray restarts it and its runs start new episodes, the ended ones "
                   f"truncated with reward 0 (fault {self.restarts[a]} of this actor)")
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _retry(self, a: int, method: str, *args: Any) -> Any:
        """``method`` on actor ``a`` once Ray has restarted it: calls are refused while the
        actor restarts (``ActorUnavailableError``), so they are repeated until it is back
        (``restart_timeout`` seconds at most); a death during the retry is retried twice
        more, then (Ray gave up: ``max_restarts`` used up) raised."""
        unavailable = self._ray.exceptions.ActorUnavailableError
        deadline, deaths = time.monotonic() + self.restart_timeout, 0
        while True:
            try:
                out = self._ray.get(getattr(self.actors[a], method).remote(*args))
                if out is None:
                    raise ActorRestarted(f"actor {a} was restarted again")
                return out
            except unavailable as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Ray actor {a} did not come back within {self.restart_timeout:.0f} s "
                                       f"({err}); its inner runs are lost") from err
                time.sleep(0.2)
            except (*self._errors, ActorRestarted) as err:
                deaths += 1
                if deaths == 3:
                    raise RuntimeError(f"Ray actor {a} could not be restarted ({type(err).__name__}: {err}); "
                                       "its inner runs are lost") from err
                self._log_fault(a, err, method)

    def _recover(self, a: int, err: BaseException, obs: np.ndarray, truncated: np.ndarray, infos: Infos) -> None:
        """Actor ``a`` died in this step: restart its runs and end their episodes truncated."""
        self._log_fault(a, err, "step")
        block = self._block(a)
        new_obs, new_infos = self._retry(a, "reset_runs", [self._recovery_seed() for _ in range(
            self.runs_per_actor[a])], None)
        fault = {FAULT_KEY: True, "actor": a, "error": type(err).__name__}
        truncated[block] = True
        for k in range(self.runs_per_actor[a]):
            i = self.offsets[a] + k
            final_info = {**self._last_infos[i], **fault}
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                infos[i] = {**new_infos[k], "final_obs": self._obs[i].copy(), "final_info": final_info}
                obs[i] = new_obs[k]
            else:
                infos[i] = final_info
                obs[i] = self._obs[i]
                if self.autoreset_mode == AutoresetMode.NEXT_STEP:
                    self._pending[i] = (new_obs[k], new_infos[k])
                else:
                    self._ended[i] = True

    def _start_pending(self, active: np.ndarray, obs: np.ndarray, infos: Infos) -> None:
        """``NEXT_STEP`` after a fault: the active runs whose new run waits start it now (reward 0)."""
        for i, waiting in enumerate(self._pending):
            if waiting is not None and active[i]:
                obs[i], infos[i] = waiting
                self._pending[i] = None

    def _remember(self, i: int, info: dict[str, Any]) -> None:
        """Env ``i``'s newest info (what a fault reports as the ended episode's last info)."""
        self._last_infos[i] = {k: v for k, v in info.items() if k not in ("final_obs", "final_info", "test",
                                                                           FAULT_KEY, "actor", "error")}

    # --- checkpoints -------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Every actor's env state and the driver's (tensors and plain values only)."""
        done, failed = self._gather({a: actor.get_state.remote() for a, actor in enumerate(self.actors)})
        if failed:
            raise RuntimeError(f"Ray actor(s) {sorted(failed)} died while their state was read; the checkpoint "
                               "would miss their runs (the next step restarts them; checkpoint after it)")
        return {"layout": list(self.runs_per_actor), "actors": [done[a] for a in range(self.num_actors)],
                "recovery_rng": self._recovery_rng.bit_generator.state, "started": self._started,
                "obs": self._obs.copy(), "last_infos": self._last_infos, "ended": self._ended.tolist(),
                "pending": [None if p is None else {"obs": p[0], "info": p[1]} for p in self._pending],
                "restarts": list(self.restarts)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from ``get_state()``; the actor layout (runs per actor) must be the same."""
        if list(state["layout"]) != self.runs_per_actor:
            raise ValueError(f"this state was saved with runs per Ray actor {list(state['layout'])}, this env has "
                             f"{self.runs_per_actor}; use the same number of envs and actors")
        self._ray.get([actor.set_state.remote(s) for actor, s in zip(self.actors, state["actors"], strict=True)])
        rng = np.random.default_rng()
        rng.bit_generator.state = state["recovery_rng"]
        self._recovery_rng, self._started = rng, bool(state["started"])
        self._obs = np.asarray(state["obs"]).copy()
        self._last_infos = [dict(i) for i in state["last_infos"]]
        self._ended = np.array(state["ended"], bool)
        self._pending = [None if p is None else (np.asarray(p["obs"]), dict(p["info"])) for p in state["pending"]]
        self.restarts = list(state["restarts"])
