"""Run directories that survive races and crashes: unique creation, one owner, atomic files.

- :func:`create_run_dir` takes the next free ``<root>/<env>_<n>``; a process that loses a
  race for a name (``mkdir`` fails because another one just made it) tries the next name.
- :class:`RunLock` holds ``fcntl.flock`` on ``<run>/.lock`` while the process owns the run, so a
  second ``--resume`` of the same run (or a resume of a run still training) is refused
  instead of deleting the owner's in-progress checkpoint. The kernel drops the lock when the
  process dies, even on SIGKILL, so a crash never leaves a run locked. (No ``fcntl`` on
  Windows: the lock is skipped there.)
- :func:`claim_dir` gives every other writer (``train_mml.py --log-dir``, ``evaluate.py
  --out``, ``train_agent.py -tb``) the same guarantee for a folder the user names: it is
  this process's while it runs (another writer is refused, not interleaved), and the
  outputs of an earlier run there are never replaced unless the user says ``--overwrite``.
- :func:`write_json_atomic` writes ``results.json`` and friends via a temporary file and
  ``os.replace``: a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmrl_training.cli_errors import UsageError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"


def create_run_dir(root: Path, name: str, attempts: int = 10_000) -> Path:
    """Create and return ``root/<name>_<n>`` for the smallest free ``n`` (race-safe)."""
    root.mkdir(parents=True, exist_ok=True)
    n = 1
    for _ in range(attempts):
        while (root / f"{name}_{n}").exists():
            n += 1
        path = root / f"{name}_{n}"
        try:
            path.mkdir()
        except FileExistsError:  # another process took this name between the check and mkdir
            n += 1
            continue
        return path
    raise UsageError(f"could not create a run directory under {root} after {attempts} attempts")


def next_run_dir(root: Path, algo: str, env_id: str) -> Path:
    """A new ``root/algo/env_<n>`` (race-safe: :func:`create_run_dir`)."""
    return create_run_dir(root / algo, env_id)


class RunLock:
    """Exclusive ownership of a run directory while this object lives (see module docstring)."""

    held: dict[str, RunLock] = {}  # keeps every lock (and its file descriptor) alive until exit

    def __init__(self, run_dir: Path, action: str = "resuming this run") -> None:
        self.path = Path(run_dir) / LOCK
        self._file = None
        if fcntl is None:
            return
        key = str(self.path.resolve())
        if key in RunLock.held:  # this process owns it already (e.g. main() called twice in one process)
            RunLock.held[key].release()
        self._file = self.path.open("a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            self._file.seek(0)
            owner = self._file.read().strip() or "another process"
            self._file.close()
            self._file = None
            raise UsageError(f"{run_dir} is in use by {owner}; wait for it to finish (or stop it) "
                             f"before {action}") from err
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"process {os.getpid()}\n")
        self._file.flush()
        RunLock.held[key] = self

    @classmethod
    def release_dir(cls, run_dir: Path) -> None:
        """Give up this process's ownership of ``run_dir`` (when its ``main`` returns)."""
        lock = cls.held.get(str((Path(run_dir) / LOCK).resolve()))
        if lock is not None:
            lock.release()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        RunLock.held.pop(str(self.path.resolve()), None)


def remove_run_dir(run_dir: Path) -> None:
    """Delete a directory this process created and owns (a run that failed before it began)."""
    RunLock.release_dir(run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)


def earlier_outputs(folder: Path, outputs: Sequence[str]) -> list[Path]:
    """The entries of ``folder`` matching the glob patterns ``outputs``."""
    return sorted({p for pattern in outputs for p in folder.glob(pattern)})


def claim_dir(folder: Path, flag: str, outputs: Sequence[str], overwrite: bool = False) -> bool:
    """Make ``folder`` (named by the user with ``flag``) this process's output folder: created
    when missing, then locked as a run directory is (:class:`RunLock`: a second writer is
    refused while this one runs). Outputs of an earlier run there (``outputs``: glob
    patterns) are refused, or removed with ``overwrite``, so that no result is replaced
    without the user asking. Returns whether ``folder`` was created (the caller removes it
    with :func:`remove_run_dir` when the run fails before writing anything)."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        RunLock(folder, f"writing into it (or choose another {flag})")
        found = earlier_outputs(folder, outputs)
        if found and not overwrite:
            names = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
            raise UsageError(f"{flag} {folder} already holds the results of an earlier run ({names}); choose "
                             "another folder, or add --overwrite to replace them")
    except BaseException:
        if created:
            remove_run_dir(folder)
        else:
            RunLock.release_dir(folder)
        raise
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return created


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN/Infinity)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Strict JSON (non-finite numbers as ``null``), written atomically."""
    write_text_atomic(path, json.dumps(json_safe(obj), indent=2, allow_nan=False))
