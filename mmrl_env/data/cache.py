"""The on-disk cache: one directory of memory-mappable ``.npy`` arrays plus ``manifest.json``.

Layout (N = clips the split lists name, clip i = ``manifest["clips"][i]``; R = rows stored)::

    manifest.json      format, version, dataset, clips, split of each clip, classes, the
                       recipe (``config``), array row shapes/dtypes, ``rows`` (R), ``complete``,
                       ``failed``, ``written``
    labels.npy         int64 (N,)
    status.npy         int8 (N,): 1 = clip written, 0 = pending or failed
    rows.npy           int64 (N,): the array row of clip i, -1 for a clip with no raw files
    <array>.npy        one per modality, e.g. audio float16 (R, 257, 188), frames uint8 (R, F, 3, S, S)

Arrays get a row only for the clips whose raw files are present when ``prepare`` starts
(``present``), so disk and memory follow the data actually there, not the length of the
shipped lists (13 clips of CREMA-D's 7,442: 9 MB instead of 4 GB of sparse files). Rows are
preallocated with ``open_memmap`` and filled one by one; a clip's status is set only after
its data, so an interrupted run resumes where it stopped, and a resumed run whose raw folder
gained clips grows the arrays (old rows copied once). Reading needs no copy of the data
(``np.load(mmap_mode="r")``). Version 1 caches (one row per listed clip) still open.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import mmrl_env.limits as limits
from mmrl_env.data.home import missing_data_message, resolve_root
from mmrl_env.data.validation import read_json_object, stratified_holdout

MANIFEST = "manifest.json"
FORMAT = "mmrl-cache"
VERSION = 2
READABLE = (1, 2)  # version 1: no rows.npy, clip i is row i
REBUILD = "run the prepare command again with --overwrite to rebuild the cache"  # the fix for a damaged cache


class CacheMismatchError(RuntimeError):
    """An existing cache was built with another recipe or clip list."""


@dataclass
class Cache:
    """A cache opened for reading (arrays are read-only memmaps). ``labels``, ``status``,
    ``clips`` and ``splits`` are per array row (clips without a row are not in them)."""

    root: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    labels: np.ndarray
    status: np.ndarray
    clips: list[str]
    splits: np.ndarray

    def rows(self, split: str) -> np.ndarray:
        """Array rows of ``split`` that were written successfully, in manifest order."""
        return np.flatnonzero((self.splits == split) & (self.status == 1))


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / MANIFEST)  # atomic: a crash never leaves half a manifest


class CacheWriter:
    """Create a cache, or reopen one with the same recipe and clips to resume it.

    ``present`` (N,) bool marks the clips whose raw files exist: only they get array rows
    (default: every clip). ``arrays`` maps a name to its per-row (shape, dtype).
    """

    def __init__(self, root: Path, meta: dict[str, Any], arrays: Mapping[str, tuple[tuple[int, ...], str]],
                 labels: np.ndarray, overwrite: bool = False, present: np.ndarray | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        n = len(meta["clips"])
        present = np.ones(n, bool) if present is None else np.asarray(present, bool)
        self.specs = {k: (tuple(s), d) for k, (s, d) in arrays.items()}
        self.manifest = {"format": FORMAT, "version": VERSION, **meta,
                         "arrays": {k: {"row_shape": list(s), "dtype": d} for k, (s, d) in self.specs.items()},
                         "complete": False, "failed": {}}
        old = self._existing(overwrite)
        if old is not None and not overwrite:  # resume
            if not self._same(old):
                raise CacheMismatchError(
                    f"{self.root} holds a cache built with another recipe or clip list; "
                    "use another --out directory, or --overwrite to rebuild it")
            self.status = np.lib.format.open_memmap(self.root / "status.npy", mode="r+")
            self.row_of = np.load(self.root / "rows.npy")
            stored = int(old.get("rows", 0))
            new = np.flatnonzero(present & (self.row_of < 0))
            self.row_of[new] = stored + np.arange(new.size)
            self.arrays = {k: self._grow(k, stored, stored + new.size) for k in self.specs}
        else:
            self.row_of = np.full(n, -1, np.int64)
            self.row_of[present] = np.arange(int(present.sum()))
            self.arrays = {k: self._open(k, "w+", int(present.sum())) for k in self.specs}
            self.status = np.lib.format.open_memmap(self.root / "status.npy", mode="w+", dtype=np.int8, shape=(n,))
            self.status[:] = 0
        self.manifest["rows"] = int(self.row_of.max(initial=-1)) + 1
        np.save(self.root / "rows.npy", self.row_of)
        np.save(self.root / "labels.npy", labels.astype(np.int64))
        _write_manifest(self.root, self.manifest)

    def _open(self, name: str, mode: str, rows: int) -> np.memmap:
        shape, dtype = self.specs[name]
        return np.lib.format.open_memmap(self.root / f"{name}.npy", mode=mode, dtype=dtype, shape=(rows, *shape))

    def _grow(self, name: str, stored: int, rows: int) -> np.memmap:
        """Array ``name`` with ``rows`` rows, its first ``stored`` kept (copied once when it grows)."""
        if rows == stored:
            return np.lib.format.open_memmap(self.root / f"{name}.npy", mode="r+")
        old = np.load(self.root / f"{name}.npy", mmap_mode="r")
        tmp = self.root / f"{name}.grow.npy"
        grown = np.lib.format.open_memmap(tmp, mode="w+", dtype=old.dtype, shape=(rows, *old.shape[1:]))
        for start in range(0, stored, 256):  # bounded memory: a chunk of rows at a time
            stop = min(start + 256, stored)
            grown[start:stop] = old[start:stop]
        grown.flush()
        del old, grown
        os.replace(tmp, self.root / f"{name}.npy")
        return np.lib.format.open_memmap(self.root / f"{name}.npy", mode="r+")

    def _existing(self, overwrite: bool = False) -> dict[str, Any] | None:
        """The manifest already in ``root``; a damaged one is replaced with ``overwrite``, else refused."""
        path = self.root / MANIFEST
        if not path.exists():
            return None
        try:
            old = read_manifest(path)
        except ValueError as err:
            if overwrite:
                return None
            raise CacheMismatchError(str(err)) from err  # the message already says: --overwrite
        if old.get("version") != VERSION and not overwrite:
            raise CacheMismatchError(f"{self.root} holds a version {old.get('version')} cache; "
                                     "rebuild it with --overwrite")
        return old

    def _same(self, old: dict[str, Any]) -> bool:
        keys = set(self.manifest) - {"complete", "failed", "written", "rows"}
        return all(old.get(k) == self.manifest[k] for k in keys)

    def pending(self) -> np.ndarray:
        """Clips still to write (never written, or failed last time: those are retried)."""
        return np.flatnonzero(np.asarray(self.status) != 1)

    def has_row(self, clip: int) -> bool:
        """Whether clip ``clip`` has an array row (its raw files were present at the start)."""
        return bool(self.row_of[clip] >= 0)

    def write(self, clip: int, values: dict[str, np.ndarray]) -> None:
        row = int(self.row_of[clip])
        if row < 0:
            raise ValueError(f"clip {clip} has no row in the cache")
        for k, v in values.items():
            self.arrays[k][row] = v
        self.status[clip] = 1

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
    version = manifest.get("version")
    if manifest.get("format") != FORMAT or version not in READABLE:
        raise ValueError(f"{path} is not an mmrl cache of version {VERSION}; prepare the data again")
    if not manifest.get("complete"):
        raise ValueError(f"the cache in {root} is incomplete (the prepare run was interrupted); "
                         "run the same prepare command again to resume it")
    try:
        n, specs = len(manifest["clips"]), dict(manifest["arrays"])
        if len(manifest["splits"]) != n:
            raise ValueError("clips and splits differ in length")
        stored = n if version == 1 else int(manifest["rows"])
        shapes = {k: spec["shape"] if version == 1 else [stored, *spec["row_shape"]] for k, spec in specs.items()}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path} is damaged ({type(err).__name__}: {err}); {REBUILD}") from err
    arrays = {k: _array(root / f"{k}.npy", shape, True) for k, shape in shapes.items()}
    labels, status = _array(root / "labels.npy", [n], False), _array(root / "status.npy", [n], False)
    row_of = np.arange(n) if version == 1 else _array(root / "rows.npy", [n], False)
    if row_of.size and (row_of.max() >= stored or np.any(np.bincount(row_of[row_of >= 0]) > 1)):
        raise ValueError(f"{root / 'rows.npy'} does not match the manifest's {stored} rows; {REBUILD}")
    clip = np.full(stored, -1, np.int64)  # the clip stored in each row (-1: none written yet)
    clip[row_of[row_of >= 0]] = np.flatnonzero(row_of >= 0)
    has = clip >= 0
    splits = np.full(stored, "", dtype=object)
    splits[has] = np.asarray(manifest["splits"], dtype=object)[clip[has]]
    row_status = np.zeros(stored, np.int8)
    row_status[has] = status[clip[has]]
    row_labels = np.zeros(stored, np.int64)
    row_labels[has] = labels[clip[has]]
    clips = [manifest["clips"][c] if c >= 0 else "" for c in clip]
    return Cache(root, manifest, arrays, row_labels, row_status, clips, splits)


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
