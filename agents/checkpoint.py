"""Checkpoints of a whole ``train_agent.py`` run, so that a resumed run ends exactly where an
uninterrupted one would.

A checkpoint is a directory ``<run>/checkpoints/step_<n>/`` holding the agent as SB3 saves
it (``agent.zip``: parameters, optimizers, ``num_timesteps``, ``_last_obs``, the episode-info
buffers), SAC's replay buffer (``replay_buffer.pkl``, SB3's ``save_replay_buffer``) and
``state.pt``: every env wrapper layer's state (the inner model, optimizer, LR schedule,
sampler, CMD, curriculum, private generators, reward baseline, TensorBoard counters), the
global torch/numpy/random RNG states SB3 samples actions and minibatches from, and the
action-space (SAC warm-up) or heuristic RNG. It is written under a temporary name and
renamed into place, and the previous checkpoint is deleted only afterwards, so a crash
never leaves a half-written checkpoint where ``--resume`` would look.

SB3 agents are checkpointed at rollout boundaries (``on_rollout_start``: after a policy
update, before the next rollout), the only points from which ``learn`` can continue;
heuristic runs after any env step. ``state.pt`` and ``agent.zip`` are pickles: load only
checkpoints you wrote, as with any SB3 model file.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from mmrl_env.envs.state import get_env_state, set_env_state

FORMAT = 1
CHECKPOINTS = "checkpoints"
STATE, AGENT_ZIP, REPLAY = "state.pt", "agent.zip", "replay_buffer.pkl"


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


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (temporary directories of an interrupted save are ignored)."""
    root = run_dir / CHECKPOINTS
    done = [p for p in root.glob("step_*") if (p / STATE).exists()] if root.is_dir() else []
    return max(done, key=steps_of, default=None)


def save_checkpoint(run_dir: Path, agent: Any, env: gym.Env, steps: int, **extra: Any) -> Path:
    """Write a checkpoint at env step ``steps``; keep only this newest one. ``extra`` goes into
    ``state.pt`` (e.g. a heuristic run's current observation)."""
    root = run_dir / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{steps:012d}"
    if not (final / STATE).exists():
        tmp = Path(tempfile.mkdtemp(prefix=".tmp_", dir=root))
        if isinstance(agent, BaseAlgorithm):
            agent.save(tmp / AGENT_ZIP)
            if isinstance(agent, OffPolicyAlgorithm):
                agent.save_replay_buffer(tmp / REPLAY)
        else:
            agent.save(tmp / "agent.json")
        state = {"format": FORMAT, "steps": steps, "env_id": env.spec.id if env.spec else None,
                 "env": get_env_state(env), "rng": global_rng_state(),
                 "agent_rng": agent_rng(agent).bit_generator.state, **extra}
        torch.save(state, tmp / STATE)  # written last: its presence marks a complete checkpoint
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
    for old in root.iterdir():
        if old != final and old.name.startswith(("step_", ".tmp_")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(checkpoint: Path) -> dict[str, Any]:
    state = torch.load(checkpoint / STATE, weights_only=False)
    if state.get("format") != FORMAT:
        raise ValueError(f"{checkpoint} has checkpoint format {state.get('format')}, this mmrl reads {FORMAT}")
    return state


def restore(state: dict[str, Any], agent: Any, env: gym.Env) -> None:
    """Put env layers, global RNGs and the agent's RNG back as they were at the checkpoint.
    Call after loading the agent: SB3's ``load`` reseeds the global RNGs."""
    set_env_state(env, state["env"])
    set_global_rng_state(state["rng"])
    agent_rng(agent).bit_generator.state = state["agent_rng"]


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

    def __init__(self, run_dir: Path, agent: Any, env: gym.Env, save_freq: int | None, interrupt: Interrupt) -> None:
        self.run_dir, self.agent, self.env = run_dir, agent, env
        self.save_freq, self.interrupt = save_freq, interrupt
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

    def save(self, steps: int, **extra: Any) -> Path:
        self.last = steps
        return save_checkpoint(self.run_dir, self.agent, self.env, steps, **extra)


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
