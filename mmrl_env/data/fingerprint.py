"""A cheap fingerprint of a dataset, so that a resumed run notices when its data changed.

- Data read from files (a prepared cache, a Custom ``.npz`` folder: ``MultimodalDataset.source``):
  the size and modification time of every file in that folder. Nothing is read, so a
  cache of many gigabytes costs a directory listing; re-preparing, replacing or editing a
  file shows. (A copy that does not keep modification times shows too: say so to resume.)
- Data generated in memory (Synthetic, a loader registered as a function): the loader's
  settings with its defaults filled in. The generators are seeded, so the same settings
  give the same data; a default changed by an mmrl update shows.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from mmrl_env.data.registry import load_dataset, loader_of

MAX_FILES = 1000  # beyond this, one summary entry (count, bytes, newest change) instead of a line per file


def _files(folder: Path) -> dict[str, Any]:
    """relative path -> [size, mtime_ns] for every file under ``folder`` (or a summary of many)."""
    stats = {str(p.relative_to(folder)): [p.stat().st_size, p.stat().st_mtime_ns]
             for p in sorted(folder.rglob("*")) if p.is_file()}
    if len(stats) > MAX_FILES:
        sizes, times = zip(*stats.values(), strict=True)
        return {f"{len(stats)} files": [sum(sizes), max(times)]}
    return stats


def _settings(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The loader's arguments, defaults filled in, as JSON-able values."""
    loader = loader_of(name)
    try:
        bound = inspect.signature(loader).bind_partial(**kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
    except (TypeError, ValueError):  # no signature to read: the settings given
        values = dict(kwargs)
    return json.loads(json.dumps(values, default=str, sort_keys=True))


def fingerprint(name: str, kwargs: dict[str, Any] | None = None, dataset: Any = None) -> dict[str, Any]:
    """The fingerprint of dataset ``name`` as ``load_dataset(name, **kwargs)`` finds it now; pass
    the ``dataset`` already loaded with those settings to spare loading it again."""
    kwargs = dict(kwargs or {})
    source = getattr(load_dataset(name, **kwargs) if dataset is None else dataset, "source", None)
    if source is not None:
        return {"dataset": name, "source": str(Path(source).resolve()), "files": _files(Path(source))}
    return {"dataset": name, "settings": _settings(name, kwargs)}


def changes(old: dict[str, Any], new: dict[str, Any], shown: int = 3) -> list[str]:
    """What differs between two fingerprints, in words (empty: the same data)."""
    if old.get("dataset") != new.get("dataset") or ("files" in old) != ("files" in new):
        return [f"dataset {old.get('dataset')} became {new.get('dataset')}"]
    if "settings" in old:
        a, b = old["settings"], new["settings"]
        return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    out = [f"read from {new['source']}, was {old['source']}"] if old.get("source") != new.get("source") else []
    a, b = old["files"], new["files"]
    for path in sorted(set(a) | set(b)):
        if path not in b:
            out.append(f"{path} is gone")
        elif path not in a:
            out.append(f"{path} is new")
        elif a[path][0] != b[path][0]:
            out.append(f"{path} changed size ({a[path][0]} -> {b[path][0]} bytes)")
        elif a[path][1] != b[path][1]:
            out.append(f"{path} was modified")
    return out[:shown] + ([f"... and {len(out) - shown} more"] if len(out) > shown else [])
