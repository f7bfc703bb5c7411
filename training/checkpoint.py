"""Checkpoints of a whole ``train_agent.py`` run, so that a resumed run ends exactly where an
uninterrupted one would, written so that loading one can never run code.

A checkpoint is a directory ``<run>/checkpoints/step_<n>/`` holding

- ``agent.zip``: the agent as SB3 saves it (so SB3 tools can read it). ``--resume`` reads
  only its tensors (``set_parameters``: parameters and optimizer states, loaded with
  ``torch.load(weights_only=True)``); its pickled ``:serialized:`` entries are never read.
  The agent itself is rebuilt from the run's ``config.yaml``.
- ``replay_buffer.npz`` (SAC): the buffer's arrays, read with ``allow_pickle=False``.
- ``state.pt``: tensors and plain values only (``mmrl_env.envs.state.to_safe``), read with
  ``weights_only=True``: every env wrapper layer's state (the inner model, optimizer, LR
  schedule, sampler, CMD, curriculum, private generators, reward baseline, TensorBoard
  counters), the global torch/numpy/random RNG states SB3 samples from, the action-space
  (SAC warm-up) or heuristic RNG, and the agent's own counters between updates
  (``AGENT_ATTRS``: ``num_timesteps``, ``_last_obs``, the episode-info buffers, ...).
- ``manifest.json``: format, step, env id and the SHA-256 of every file above. Written
  last; a checkpoint is trusted only when every file is present and matches it.

The checkpoint is written under a temporary name and renamed into place; the newest
``keep`` (default 2) are kept, so a damaged newest checkpoint (a crash while the disk was
full, a truncated copy) falls back to the previous one with a message that names the damage.

SB3 agents are checkpointed at rollout boundaries (``on_rollout_start``: after a policy
update, before the next rollout), the only points from which ``learn`` can continue;
heuristic runs after any env step. ``--trust-checkpoint`` (for a directory you trust)
loads the agent with SB3's own ``load``, which unpickles; nothing else ever does.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.save_util import load_from_zip_file, recursive_setattr

from mmrl_env.bounded_input import check_zip, npz_headers, read_json_file
from mmrl_env.envs.state import WRAPPER_FIELDS, get_env_state, layers, load_safe, save_safe, set_env_state

FORMAT = 2  # 1: pickled state.pt (refused: it could run code)
CHECKPOINTS = "checkpoints"
STATE, AGENT_ZIP, REPLAY, MANIFEST = "state.pt", "agent.zip", "replay_buffer.npz", "manifest.json"
DEFAULT_KEEP = 2
# What an SB3 agent changes while it learns, besides its networks and optimizers (found by
# comparing a trained agent's __dict__ with a fresh one's): all else is rebuilt from the config.
AGENT_ATTRS = ("num_timesteps", "_total_timesteps", "_current_progress_remaining", "_n_updates", "_episode_num",
               "_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer", "ep_success_buffer")
# the state attributes of SB3's episode-statistics wrappers around the training env (beside
# Gymnasium's: mmrl_env.envs.state knows no agent library)
SB3_WRAPPER_FIELDS = {
    "Monitor": ("rewards", "needs_reset", "episode_returns", "episode_lengths", "episode_times", "total_steps"),
    "VecMonitor": ("episode_returns", "episode_lengths", "episode_count"),
}
ENV_WRAPPER_FIELDS = {**WRAPPER_FIELDS, **SB3_WRAPPER_FIELDS}
REPLAY_FIELDS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, from another mmrl, or holding code."""


class StopForResume(KeyboardInterrupt):
    """Raised right after the checkpoint that a Ctrl-C asked for: the run stops, resumable."""


def global_rng_state() -> dict[str, Any]:
    """The process-wide RNGs SB3 draws from (action noise, minibatch shuffles, ``random``)."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def agent_rng(agent: Any) -> np.random.Generator:
    """The agent's own numpy generator: SAC's warm-up samples the action space; heuristics
    (``random``) keep a seeded generator."""
    return agent.action_space.np_random if isinstance(agent, BaseAlgorithm) else agent.rng


def steps_of(path: Path) -> int:
    return int(path.name.removeprefix("step_"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def damage(checkpoint: Path) -> str | None:
    """What is wrong with ``checkpoint`` (a missing, unreadable or altered file), or ``None``."""
    files, problem = _listed_files(checkpoint)
    if problem:
        return problem
    for name, digest in files.items():
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256(path) != digest:
            return f"{name} does not match its checksum in {MANIFEST} (truncated or altered)"
    return None


def _listed_files(checkpoint: Path) -> tuple[dict[str, str], str | None]:
    """The files ``checkpoint``'s manifest vouches for (name -> SHA-256), or what is wrong with the manifest."""
    if not (checkpoint / MANIFEST).exists():
        if (checkpoint / STATE).exists():
            return {}, f"no {MANIFEST}: written by an older mmrl (pickled state.pt, never loaded: it could run code)"
        return {}, f"no {MANIFEST} (the save was interrupted)"
    try:
        manifest = read_json_file(checkpoint / MANIFEST, MANIFEST)
        files, fmt = manifest["files"], manifest["format"]
    except (ValueError, KeyError, TypeError) as err:
        return {}, f"{MANIFEST} is unreadable ({type(err).__name__}: {err})"
    if fmt != FORMAT:
        return {}, f"checkpoint format {fmt}, this mmrl reads format {FORMAT}"
    if not isinstance(files, dict) or STATE not in files:
        return {}, f"{MANIFEST} lists no {STATE} (a manifest without its files vouches for nothing)"
    for name, digest in files.items():
        if not (_plain_file_name(name) and isinstance(digest, str)):
            return {}, f"{MANIFEST} lists {name!r}: not a file of this checkpoint with a SHA-256"
    return files, None


def _plain_file_name(name: Any) -> bool:
    """A file directly inside the checkpoint: no path, not ``.`` or ``..``."""
    return isinstance(name, str) and "/" not in name and "\\" not in name and name not in ("", ".", "..")


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoint directories, newest first (temporary ones excluded)."""
    root = run_dir / CHECKPOINTS
    found = [p for p in root.glob("step_*") if p.is_dir() and p.name[5:].isdigit()] if root.is_dir() else []
    return sorted(found, key=steps_of, reverse=True)


def latest_checkpoint(run_dir: Path, log: Callable[[str], None] | None = None) -> Path | None:
    """The newest checkpoint that passes its manifest; each damaged newer one is reported to
    ``log`` (by name and what is wrong) and skipped."""
    for path in checkpoints(run_dir):
        problem = damage(path)
        if problem is None:
            return path
        if log is not None:
            log(f"checkpoint {path} is damaged: {problem}; trying the previous one")
    return None


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete half-written checkpoints (``.tmp_*``) a killed save left; call while owning the run."""
    root = run_dir / CHECKPOINTS
    stale = sorted(root.glob(".tmp_*")) if root.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def agent_attrs(agent: BaseAlgorithm) -> dict[str, Any]:
    return {name: getattr(agent, name) for name in AGENT_ATTRS if hasattr(agent, name)}


def save_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    """The buffer's arrays and write position, as a plain ``.npz`` (no pickle)."""
    arrays = {f: getattr(buffer, f) for f in REPLAY_FIELDS if getattr(buffer, f, None) is not None}
    with path.open("wb") as f:
        np.savez(f, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay_buffer(buffer: ReplayBuffer, path: Path) -> None:
    """The buffer's arrays from ``path``: shapes (from the ``.npy`` headers, before anything is
    inflated) and the write position are checked against this agent's buffer first."""
    try:
        headers = npz_headers(path)
    except (ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} is damaged ({err})") from err
    for f in REPLAY_FIELDS:
        mine = getattr(buffer, f, None)
        if f in headers and (mine is None or headers[f][0] != mine.shape):
            raise CheckpointError(f"{path}: {f} has shape {headers[f][0]}, this agent's buffer "
                                  f"{None if mine is None else mine.shape}")
    if headers.get("pos", ((None,), None))[0] != () or headers.get("full", ((None,), None))[0] != ():
        raise CheckpointError(f"{path}: no scalar 'pos' and 'full' entries")
    with np.load(path, allow_pickle=False) as data:
        pos, full = int(data["pos"]), bool(data["full"])
        if not 0 <= pos < buffer.buffer_size:
            raise CheckpointError(f"{path}: write position {pos} outside this buffer of {buffer.buffer_size}")
        for f in REPLAY_FIELDS:
            if f in data.files:
                setattr(buffer, f, data[f].astype(getattr(buffer, f).dtype, copy=False))
        buffer.pos, buffer.full = pos, full


def _fsync_dir(path: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_manifest(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's ``manifest.json`` (``{}`` when unreadable: see :func:`damage`)."""
    try:
        manifest = read_json_file(checkpoint / MANIFEST, MANIFEST)
    except ValueError:
        return {}
    return manifest if isinstance(manifest, dict) else {}


def save_checkpoint(run_dir: Path, agent: Any, env: gym.Env, steps: int, keep: int = DEFAULT_KEEP,
                    meta: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Write a checkpoint at env step ``steps``; keep the newest ``keep``. ``meta`` (JSON) goes
    into the manifest (the run's config: a damaged config.yaml is restored from it);
    ``extra`` into ``state.pt`` (e.g. a heuristic run's current observation)."""
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{steps:012d}"
    if damage(final) is not None:
        tmp = Path(tempfile.mkdtemp(prefix=".tmp_", dir=root))
        try:
            _write_checkpoint(tmp, agent, env, steps, meta, extra)
        except BaseException:  # a full disk, Ctrl-C: no half-written checkpoint stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        _fsync_dir(root)
    for old in checkpoints(run_dir)[max(keep, 1):]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_checkpoint(tmp: Path, agent: Any, env: gym.Env, steps: int, meta: dict[str, Any] | None,
                      extra: dict[str, Any]) -> None:
    """Every file of a checkpoint into the temporary folder ``tmp``, the manifest last."""
    if isinstance(agent, BaseAlgorithm):
        agent.save(tmp / AGENT_ZIP)
        if isinstance(agent, OffPolicyAlgorithm) and agent.replay_buffer is not None:
            save_replay_buffer(agent.replay_buffer, tmp / REPLAY)
    else:
        agent.save(tmp / "agent.json")
    state = {"format": FORMAT, "steps": steps, "env_id": env.spec.id if env.spec else None,
             "env": get_env_state(env, ENV_WRAPPER_FIELDS), "rng": global_rng_state(),
             "agent_rng": agent_rng(agent).bit_generator.state,
             "agent": agent_attrs(agent) if isinstance(agent, BaseAlgorithm) else {}, **extra}
    save_safe(state, tmp / STATE)
    files = {p.name: sha256(p) for p in sorted(tmp.iterdir())}
    manifest = {"format": FORMAT, "steps": steps, "env_id": state["env_id"], "files": files, **(meta or {})}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))  # last: marks a complete checkpoint


def load_state(checkpoint: Path) -> dict[str, Any]:
    """``state.pt`` of a verified checkpoint, read without unpickling anything but tensors and plain values."""
    path = checkpoint / STATE
    try:
        if zipfile.is_zipfile(path):  # torch's format; a legacy (non-zip) pickle is as large as the file
            check_zip(path, "the checkpoint state")
        state = load_safe(path)
    except pickle.UnpicklingError as err:
        found = _unsafe_global(err)
        raise CheckpointError(f"{path} refused without running it: it holds {found}, but an mmrl state holds only "
                              "tensors, numbers, strings, lists and dicts (the file was crafted, or written by an "
                              "older mmrl that pickled; resume from a checkpoint written by this version, or pass "
                              "--trust-checkpoint only if you made this file yourself)") from err
    except (OSError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} is unreadable ({type(err).__name__}: {' '.join(str(err).split())[:300]})"
                              ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{checkpoint} is not an mmrl checkpoint of format {FORMAT}")
    problem = _state_problem(state, steps_of(checkpoint) if checkpoint.name[5:].isdigit() else None)
    if problem:
        raise CheckpointError(f"{path} holds {problem}; the file was altered or is not from this mmrl")
    return state


def _unsafe_global(err: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused, in a few words (its message is a page long)."""
    text = str(err)
    if "GLOBAL " in text:
        return f"a reference to the Python callable {text.split('GLOBAL ', 1)[1].split()[0].strip('.,')}"
    return "pickled Python objects"


def _state_problem(state: dict[str, Any], steps: int | None) -> str | None:
    """What is wrong with the plain values of a loaded ``state.pt`` (types, ranges), or ``None``.
    Checked before any of them is used; the env layers check their own entries when restored."""
    return _run_state_problem(state, steps) or _agent_state_problem(state.get("agent", {}), state["steps"])


def _run_state_problem(state: dict[str, Any], steps: int | None) -> str | None:
    """The step count (``steps``: the checkpoint's, when its name says it), env id, env layers and RNGs."""
    n = state.get("steps")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0 or (steps is not None and n != steps):
        return f"steps={n!r}, not the checkpoint's step {steps}"
    if not isinstance(state.get("env_id"), (str, type(None))):
        return f"env_id={state.get('env_id')!r}, not a string"
    if not isinstance(state.get("env"), list):
        return "no env state (a list of wrapper layers)"
    rng = state.get("rng")
    if not isinstance(rng, dict) or not {"torch", "numpy", "random"} <= set(rng) \
            or not isinstance(rng["torch"], torch.Tensor) or rng["torch"].dtype != torch.uint8:
        return "no valid global RNG state"
    if not isinstance(state.get("agent_rng"), dict):
        return "no valid agent RNG state"
    return None


def _agent_state_problem(agent: Any, n: int) -> str | None:
    """The agent's saved attributes: known names, counts, ``num_timesteps`` equal to the env step ``n``."""
    if not isinstance(agent, dict) or not set(agent) <= set(AGENT_ATTRS):
        return f"agent attributes {sorted(agent) if isinstance(agent, dict) else agent!r} (known: {AGENT_ATTRS})"
    for key in ("num_timesteps", "_total_timesteps", "_n_updates", "_episode_num"):
        value = agent.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"agent {key}={value!r}, not a count"
    if "num_timesteps" in agent and agent["num_timesteps"] != n:
        return f"agent num_timesteps={agent['num_timesteps']} at env step {n}"
    progress = agent.get("_current_progress_remaining", 1.0)
    if not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
        return f"agent _current_progress_remaining={progress!r}, not in [0, 1]"
    return None


def load_parameters(agent: BaseAlgorithm, path: Path) -> None:
    """Networks, optimizer states and tensor variables (SAC's entropy coefficient) of the SB3
    file ``path`` into ``agent``, reading only its ``.pth`` entries (``weights_only=True``):
    the pickled entries of SB3's ``data`` are never touched."""
    try:
        check_zip(path, "the agent file")
        _, params, variables = load_from_zip_file(path, load_data=False, device=agent.device)
        agent.set_parameters(params, exact_match=True, device=agent.device)
        for name, value in (variables or {}).items():
            if value is not None:
                recursive_setattr(agent, f"{name}.data", value.data)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: a tensor entry holds more than tensors; refused without running it") from err
    except (zipfile.BadZipFile, OSError, RuntimeError, ValueError, KeyError, EOFError) as err:
        raise CheckpointError(f"{path} does not fit this {type(agent).__name__} agent or is damaged "
                              f"({type(err).__name__}: {str(err)[:300]})") from err


def restore_agent(agent: BaseAlgorithm, checkpoint: Path, state: dict[str, Any]) -> None:
    """Continue a freshly built SB3 agent from ``checkpoint``: tensors from ``agent.zip``, the
    learning counters from ``state``, SAC's replay buffer from its ``.npz``."""
    load_parameters(agent, checkpoint / AGENT_ZIP)
    last_obs = state.get("agent", {}).get("_last_obs")
    if last_obs is not None and (not isinstance(last_obs, np.ndarray)
                                 or last_obs.shape != (agent.n_envs, *agent.observation_space.shape)):
        raise CheckpointError(f"{checkpoint / STATE}: the agent's last observation has shape "
                              f"{getattr(last_obs, 'shape', type(last_obs).__name__)}, this agent's "
                              f"{(agent.n_envs, *agent.observation_space.shape)}")
    for name, value in state.get("agent", {}).items():
        setattr(agent, name, value)
    if isinstance(agent, OffPolicyAlgorithm) and (checkpoint / REPLAY).exists():
        load_replay_buffer(agent.replay_buffer, checkpoint / REPLAY)


def restore(state: dict[str, Any], agent: Any, env: gym.Env) -> None:
    """Put env layers, global RNGs and the agent's RNG back as they were at the checkpoint.
    Call after building the agent: SB3 reseeds the global RNGs when it is built. A state that
    does not fit (another env, altered values) is a :class:`CheckpointError` saying which part."""
    for part, apply in (("env state", lambda: set_env_state(env, state["env"])),
                        ("global RNG state", lambda: set_global_rng_state(state["rng"])),
                        ("agent RNG state", lambda: setattr(agent_rng(agent).bit_generator, "state",
                                                            state["agent_rng"]))):
        try:
            apply()
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
            raise CheckpointError(f"the checkpoint's {part} does not fit this run "
                                  f"({type(err).__name__}: {' '.join(str(err).split())[:300]})") from err


def purge_after(writer: Any, step: int) -> None:
    """Tell TensorBoard to drop this run's points at ``step`` and later, which a resumed run
    writes again (what ``SummaryWriter(purge_step=...)`` writes, on an open writer)."""
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog

    file_writer = writer._get_file_writer() if hasattr(writer, "_get_file_writer") else writer.file_writer
    file_writer.add_event(Event(step=step, session_log=SessionLog(status=SessionLog.START)))
    writer.flush()


class PurgeSB3TensorBoard(BaseCallback):
    """At the start of a resumed ``learn``: purge SB3's TensorBoard run past the checkpoint."""

    def _on_training_start(self) -> None:
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        for fmt in self.model.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                purge_after(fmt.writer, self.model.num_timesteps + 1)

    def _on_step(self) -> bool:
        return True


def restore_tensorboard(env: gym.Env, steps: int) -> PurgeSB3TensorBoard:
    """After a resume from env step ``steps``: the env's TensorBoard layer drops what the
    crashed process wrote after the checkpoint; the callback does the same for SB3's curves.
    (Episode-indexed tags, ``episode/*``, are not purged: their steps count episodes.)"""
    for layer in layers(env):
        if hasattr(layer, "writer") and hasattr(layer, "global_step"):
            purge_after(layer.writer, getattr(layer, "tb_step", layer.global_step) + 1)
    return PurgeSB3TensorBoard()


class Interrupt:
    """Context: the first Ctrl-C asks for a checkpoint at the next boundary and a clean stop;
    a second one stops at once (the newest periodic checkpoint stays). Ctrl-C in the middle
    of an env step would leave the inner model half-updated, hence the deferral."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: saving a checkpoint at the next boundary (SB3: rollout end; heuristic: env step), "
              "then stopping (press Ctrl-C again to stop now without saving)", flush=True)

    def __enter__(self) -> Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Checkpointer:
    """Saves every ``save_freq`` env steps (the first boundary at or past each multiple) and
    when an :class:`Interrupt` asks, then stops the run with :class:`StopForResume`."""

    def __init__(self, run_dir: Path, agent: Any, env: gym.Env, save_freq: int | None, interrupt: Interrupt,
                 keep: int = DEFAULT_KEEP, meta: dict[str, Any] | None = None) -> None:
        self.run_dir, self.agent, self.env = run_dir, agent, env
        self.save_freq, self.interrupt, self.keep, self.meta = save_freq, interrupt, keep, meta
        self.last: int | None = None

    def boundary(self, steps: int, **extra: Any) -> None:
        """Called where the run can be continued from: a checkpoint here resumes exactly."""
        if self.last is None:
            self.last = steps
        due = self.save_freq and steps // self.save_freq > self.last // self.save_freq
        if due or self.interrupt.requested:
            path = self.save(steps, **extra)
            if self.interrupt.requested:
                raise StopForResume(str(path))

    def end(self, steps: int, **extra: Any) -> None:
        """Training is done: a checkpoint, so that a crash or Ctrl-C in the final comparison
        resumes without training again. After a Ctrl-C during the last rollout (no boundary
        came) the run stops here (``--resume`` does the rest)."""
        path = self.save(steps, **extra)
        if self.interrupt.requested:
            raise StopForResume(str(path))

    def save(self, steps: int, **extra: Any) -> Path:
        self.last = steps
        return save_checkpoint(self.run_dir, self.agent, self.env, steps, self.keep, self.meta, **extra)


class ResumableCheckpointCallback(BaseCallback):
    """SB3 hook: a rollout's start is a boundary (the previous update is done, nothing pending).

    Not SB3's ``CheckpointCallback`` (which saves the agent alone): this one saves the whole
    resumable run through a :class:`Checkpointer`."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        super().__init__()
        self.checkpointer = checkpointer

    def _on_training_start(self) -> None:
        self.checkpointer.last = self.model.num_timesteps

    def _on_rollout_start(self) -> None:
        self.checkpointer.boundary(self.model.num_timesteps)

    def _on_step(self) -> bool:
        return True
