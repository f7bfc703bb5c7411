"""The on-disk cache: one directory of memory-mappable ``.npy`` arrays plus ``manifest.json``.

Layout (N = clips of all splits, row i = ``manifest["clips"][i]``)::

    manifest.json      format, version, dataset, clips, split of each clip, classes, the
                       recipe (``config``), array shapes/dtypes, ``complete``, ``failed``
    labels.npy         int64 (N,)
    status.npy         int8 (N,): 1 = row written, 0 = pending or failed
    <array>.npy        one per modality, e.g. audio float16 (N, 257, 188), frames uint8 (N, F, 3, S, S)

Arrays are preallocated with ``open_memmap`` and filled row by row; a row's status is set
only after its data, so an interrupted run resumes where it stopped and reading needs no
copy of the data (``np.load(mmap_mode="r")``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrl_env import limits
from mmrl_env.data.home import missing_data_message, resolve_root
from mmrl_env.data.validation import read_json_object, stratified_holdout

MANIFEST = "manifest.json"
FORMAT = "mmrl-cache"
VERSION = 1
REBUILD = "run the prepare command again with --overwrite to rebuild the cache"  # the fix for a damaged cache


class CacheMismatchError(RuntimeError):
    """An existing cache was built with another recipe or clip list."""


@dataclass
class Cache:
    """A cache opened for reading (arrays are read-only memmaps)."""

    root: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    labels: np.ndarray
    status: np.ndarray

    def rows(self, split: str) -> np.ndarray:
        """Rows of ``split`` that were written successfully, in manifest order."""
        names = np.asarray(self.manifest["splits"])
        return np.flatnonzero((names == split) & (self.status == 1))


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / MANIFEST)  # atomic: a crash never leaves half a manifest


class CacheWriter:
    """Create a cache, or reopen one with the same recipe and clips to resume it."""

    def __init__(self, root: Path, meta: dict[str, Any], arrays: dict[str, tuple[tuple[int, ...], str]],
                 labels: np.ndarray, overwrite: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        n = len(meta["clips"])
        shapes = {k: {"shape": [n, *s], "dtype": d} for k, (s, d) in arrays.items()}
        self.manifest = {"format": FORMAT, "version": VERSION, **meta, "arrays": shapes,
                         "complete": False, "failed": {}}
        old = self._existing(overwrite)
        resume = old is not None and not overwrite
        if resume and not self._same(old):
            raise CacheMismatchError(
                f"{self.root} holds a cache built with another recipe or clip list; "
                "use another --out directory, or --overwrite to rebuild it")
        mode = "r+" if resume else "w+"
        self.arrays = {k: np.lib.format.open_memmap(self.root / f"{k}.npy", mode=mode, dtype=d, shape=(n, *s))
                       for k, (s, d) in arrays.items()}
        self.status = np.lib.format.open_memmap(self.root / "status.npy", mode=mode, dtype=np.int8, shape=(n,))
        if not resume:
            self.status[:] = 0
        np.save(self.root / "labels.npy", labels.astype(np.int64))
        _write_manifest(self.root, self.manifest)

    def _existing(self, overwrite: bool = False) -> dict[str, Any] | None:
        """The manifest already in ``root``; a damaged one is replaced with ``overwrite``, else refused."""
        path = self.root / MANIFEST
        if not path.exists():
            return None
        try:
            return read_manifest(path)
        except ValueError as err:
            if overwrite:
                return None
            raise CacheMismatchError(str(err)) from err  # the message already says: --overwrite

    def _same(self, old: dict[str, Any]) -> bool:
        keys = set(self.manifest) - {"complete", "failed"}
        return all(old.get(k) == self.manifest[k] for k in keys)

    def pending(self) -> np.ndarray:
        """Rows still to write (never written, or failed last time: those are retried)."""
        return np.flatnonzero(np.asarray(self.status) != 1)

    def write(self, row: int, values: dict[str, np.ndarray]) -> None:
        for k, v in values.items():
            self.arrays[k][row] = v
        self.status[row] = 1

    def finish(self, failed: dict[str, str]) -> dict[str, Any]:
        """Flush everything and record the outcome; returns the final manifest."""
        for a in (*self.arrays.values(), self.status):
            a.flush()
        self.manifest["failed"] = failed
        self.manifest["complete"] = True
        self.manifest["written"] = int(np.count_nonzero(np.asarray(self.status) == 1))
        _write_manifest(self.root, self.manifest)
        return self.manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """``manifest.json``, or a ``ValueError`` naming the file when it is truncated or not a manifest."""
    return read_json_object(path, REBUILD, limits.MAX_RECORD_BYTES)


def _array(path: Path, shape: list[int] | None, mmap: bool) -> np.ndarray:
    """One cache array, checked against the shape the manifest promises."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {REBUILD}")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path} is truncated or damaged ({type(err).__name__}: {err}); {REBUILD}") from err
    if shape is not None and list(array.shape) != list(shape):
        raise ValueError(f"{path} has shape {list(array.shape)}, the manifest says {list(shape)}; {REBUILD}")
    return array


def open_cache(root: Path) -> Cache:
    """Open a finished cache read-only (FileNotFoundError / ValueError name the file and the fix)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {root}")
    manifest = read_manifest(path)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path} is not an mmrl cache of version {VERSION}; prepare the data again")
    if not manifest.get("complete"):
        raise ValueError(f"the cache in {root} is incomplete (the prepare run was interrupted); "
                         "run the same prepare command again to resume it")
    try:
        n, specs = len(manifest["clips"]), dict(manifest["arrays"])
        if len(manifest["splits"]) != n:
            raise ValueError("clips and splits differ in length")
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); {REBUILD}") from err
    arrays = {k: _array(root / f"{k}.npy", spec.get("shape"), True) for k, spec in specs.items()}
    return Cache(root, manifest, arrays, _array(root / "labels.npy", [n], False),
                 _array(root / "status.npy", [n], False))


def open_prepared(name: str, command: str, root: Path | str | None, prepare: str, layout: str) -> Cache:
    """Open the cache of dataset ``name`` for a loader: ``root``, else the data home's
    ``<command>`` directory. A missing or unprepared cache raises an error that names the
    directory it looked in and the ``prepare`` command that fills it."""
    path = resolve_root(root, command)
    if not path.is_dir():
        raise FileNotFoundError(missing_data_message(name, command, path, root is not None, prepare, layout,
                                                     "which does not exist"))
    try:
        cache = open_cache(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(missing_data_message(name, command, path, root is not None, prepare, layout,
                                                     f"which holds no prepared cache ({err})")) from err
    except ValueError as err:  # damaged or interrupted: the message says the fix; add the command that does it
        raise ValueError(f"{err}\n{name}'s prepare command: {prepare}") from err
    if cache.manifest.get("dataset") != name:
        raise ValueError(f"{path} holds a {cache.manifest.get('dataset')} cache, not {name}; prepare it with: "
                         f"{prepare}")
    return cache


def split_rows(cache: Cache, val_fraction: float, val_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of train, val, test: the cache's ``val`` rows if its lists had any, else a
    stratified ``val_fraction`` of train chosen with ``val_seed`` (test is never touched)."""
    train, val, test = cache.rows("train"), cache.rows("val"), cache.rows("test")
    if val.size == 0:
        kept, held = stratified_holdout(cache.labels[train], val_fraction, val_seed)
        train, val = train[kept], train[held]
    for split, rows in (("train", train), ("val", val), ("test", test)):
        if rows.size == 0:
            raise ValueError(f"the cache in {cache.root} has no usable {split} clip (every one failed or its "
                             f"list is empty; see 'failed' in {cache.root / MANIFEST}); fix the raw data and "
                             "run the prepare command again")
    return train, val, test
