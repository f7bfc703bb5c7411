"""User data without code: one ``.npz`` per split, registered as the dataset ``Custom``.

Format (``root``)::

    train.npz   arrays ``<modality>`` (one per modality, first dimension N) and ``labels``
    val.npz     same arrays (optional: else a stratified ``val_fraction`` of train is held out)
    test.npz    same arrays
    meta.json   optional: {"modalities": ["audio", "video"],
                           "encoders": {"video": {"name": "resnet18", "kwargs": {"in_channels": 3}}},
                           "num_classes": 6, "optim": {"lr": 0.01}}

``labels`` are integers 0..K−1 (K = ``num_classes`` or the largest label + 1). Inputs are
used as float32, as stored (normalise them beforehand). Without ``meta.json`` the
modalities are every array but ``labels``, in sorted order, and encoders default by shape:
(N, D) → ``mlp``, (N, H, W) or (N, C, H, W) → ``cnn`` (a 3-D array gets a channel axis).
Use it as ``gymnasium.make("DUS-Custom", dataset_kwargs={"root": "my_data"})``, or give it
its own name: ``register_dataset("MyData", functools.partial(load_npz, root="my_data"))``.

Every split is checked when it is loaded, so bad data fails at once with the file named,
not after an episode has trained: unreadable or non-``.npz`` files, a malformed
``meta.json``, a split without samples, and NaN/inf inputs are refused.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrl_env.bounded_input import npz_headers
from mmrl_env.data.base import ModalitySpec, MultimodalDataset, TensorSplit
from mmrl_env.data.home import ELSEWHERE, resolve_root, where_text
from mmrl_env.data.validation import read_json_object, stratified_holdout
from mmrl_env.kwargs import unknown_kwargs_message
from mmrl_env.limits import check_limit

LAYOUT = "<root>/train.npz, [val.npz], test.npz (arrays '<modality>' and 'labels'), optional meta.json"


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; expected {LAYOUT}")
    try:
        npz_headers(path)  # sizes, ratio and headers checked before anything is inflated
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}: {err}); it may be truncated "
                         "or another format: save it again with numpy.savez(path, <modality>=..., labels=...)"
                         ) from err
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise ValueError("it holds a single array, not named arrays")
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as err:
        raise ValueError(f"{path} is not a readable .npz file ({type(err).__name__}: {err}); it may be truncated "
                         "or another format: save it again with numpy.savez(path, <modality>=..., labels=...)"
                         ) from err


META_KEYS = ("name", "modalities", "encoders", "num_classes", "optim", "source")  # source: provenance, not read
MAX_ABS_INPUT = 1e15  # larger inputs overflow float32 in the first layer's sums of squares (loss NaN at once)


def _meta(root: Path) -> dict[str, Any]:
    """``meta.json`` with each field's type checked (an error names the field and the form it wants)."""
    path = root / "meta.json"
    if not path.is_file():
        return {}
    meta = read_json_object(path, 'fix it (a JSON object like {"modalities": [...]}) or delete it (it is optional)')
    message = unknown_kwargs_message(meta, META_KEYS, "field(s)", str(path))
    if message:
        raise ValueError(message)
    for key, check in _META_CHECKS.items():
        if key in meta:
            check(path, meta[key])
    return meta


ENCODERS_SPEC = '{"<modality>": {"name": "mlp", "kwargs": {"in_dim": 40}}}'


def _wrong(path: Path, key: str, value: Any, want: str) -> ValueError:
    return ValueError(f"{path}: {key!r} is {value!r}; expected {want}")


def _form(key: str, fits: Callable[[Any], bool], want: str) -> Callable[[Path, Any], None]:
    """A check that ``meta.json``'s ``key`` ``fits``, else an error saying it wants ``want``."""
    def check(path: Path, value: Any) -> None:
        if not fits(value):
            raise _wrong(path, key, value, want)
    return check


def _check_num_classes(path: Path, k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise _wrong(path, "num_classes", k, "an integer >= 2")
    check_limit("num_classes", k, str(path))


def _check_encoders(path: Path, encoders: Any) -> None:
    if not isinstance(encoders, dict):
        raise _wrong(path, "encoders", encoders, f"a mapping like {ENCODERS_SPEC}")
    for m, enc in encoders.items():
        if not (isinstance(enc, dict) and isinstance(enc.get("name"), str)
                and isinstance(enc.get("kwargs", {}), dict) and set(enc) <= {"name", "kwargs"}):
            raise ValueError(f"{path}: encoders[{m!r}] is {enc!r}; expected "
                             f'{{"name": <encoder>, "kwargs": {{...}}}} (kwargs optional), as in {ENCODERS_SPEC}')


# meta.json's fields, checked in this order when present
_META_CHECKS: dict[str, Callable[[Path, Any], None]] = {
    "name": _form("name", lambda v: isinstance(v, str), "a string"),
    "modalities": _form("modalities", lambda v: isinstance(v, list) and bool(v) and all(isinstance(m, str) for m in v),
                        'a non-empty list of array names, e.g. ["audio", "video"]'),
    "num_classes": _check_num_classes,
    "source": _form("source", lambda v: isinstance(v, (str, dict)),
                    "a string or mapping saying where the data came from (kept, never read)"),
    "optim": _form("optim", lambda v: isinstance(v, dict), 'a mapping of OptimConfig fields, e.g. {"lr": 0.01}'),
    "encoders": _check_encoders,
}


def _check_labels(root: Path, data: dict[str, dict[str, np.ndarray]], k: int) -> None:
    """Labels a model can learn and be scored on: below ``num_classes``, at least two classes in
    training, and no class in val/test that training never shows (its accuracy would be
    meaningless: 0 on those samples whatever the method)."""
    for split, arrays in data.items():
        top = int(arrays["labels"].max(initial=0))
        if top >= k:
            raise ValueError(f"{root / (split + '.npz')}: label {top} is not below num_classes={k}")
    seen = np.unique(data["train"]["labels"])
    if seen.size < 2:
        raise ValueError(f"{root / 'train.npz'}: every training label is {seen.tolist()}; a classifier needs "
                         "at least two classes to learn")
    for split in ("val", "test"):
        if split in data:
            unseen = np.setdiff1d(np.unique(data[split]["labels"]), seen)
            if unseen.size:
                raise ValueError(f"{root / (split + '.npz')}: label(s) {unseen[:10].tolist()} never occur in "
                                 "train.npz, so no model can learn them; move samples of those classes into training")


def _default_encoder(name: str, sample_shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    if len(sample_shape) == 1:
        return "mlp", {"in_dim": sample_shape[0]}
    if len(sample_shape) in (2, 3):
        return "cnn", {"in_channels": 1 if len(sample_shape) == 2 else sample_shape[0]}
    raise ValueError(f"modality {name!r} has per-sample shape {sample_shape}: no default encoder; "
                     "name one in meta.json ('encoders')")


def _check(split: str, arrays: dict[str, np.ndarray], modalities: list[str], shapes: dict[str, tuple]) -> None:
    if "labels" not in arrays:
        raise ValueError(f"{split}.npz has no 'labels' array (found {sorted(arrays)})")
    y = arrays["labels"]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError(f"{split}.npz 'labels' must be a 1-D array of integers >= 0, got {y.dtype} {y.shape}")
    if y.size == 0:
        raise ValueError(f"{split}.npz has no samples ('labels' is empty); every split needs at least one")
    for m in modalities:
        if m not in arrays:
            raise ValueError(f"{split}.npz has no array {m!r} (found {sorted(arrays)})")
        x = arrays[m]
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{split}.npz: {m!r} has {x.shape[0]} samples but 'labels' has {y.shape[0]}")
        _check_values(split, m, x)
        if shapes.setdefault(m, x.shape[1:]) != x.shape[1:]:
            raise ValueError(f"{split}.npz: {m!r} samples have shape {x.shape[1:]}, "
                             f"but {shapes[m]} in train.npz")


def _check_values(split: str, m: str, x: np.ndarray) -> None:
    """Modality ``m``'s inputs ``x``: real numbers, finite, and small enough for float32 arithmetic."""
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise ValueError(f"{split}.npz: {m!r} has dtype {x.dtype}; inputs must be real numbers")
    finite = np.isfinite(x) if np.issubdtype(x.dtype, np.floating) else None
    if finite is not None and not finite.all():
        bad = np.flatnonzero(~finite.reshape(x.shape[0], -1).all(axis=1))
        raise ValueError(f"{split}.npz: {m!r} has NaN or infinite values in {bad.size} sample(s) "
                         f"(first: sample {bad[0]}); fix or drop them (e.g. numpy.nan_to_num) and save again")
    if x.size and np.issubdtype(x.dtype, np.number) and np.abs(x).max() > MAX_ABS_INPUT:
        bad = np.flatnonzero((np.abs(x) > MAX_ABS_INPUT).reshape(x.shape[0], -1).any(axis=1))
        raise ValueError(f"{split}.npz: {m!r} has values beyond +-{MAX_ABS_INPUT:g} in {bad.size} sample(s) "
                         f"(first: sample {bad[0]}, largest {np.abs(x).max():g}); they overflow float32 "
                         "arithmetic: standardise the inputs (e.g. (x - mean) / std) and save again")


def _split(arrays: dict[str, np.ndarray], modalities: list[str], rows: np.ndarray | None = None) -> TensorSplit:
    def take(a: np.ndarray) -> np.ndarray:
        return a if rows is None else a[rows]

    inputs = []
    for m in modalities:
        x = torch.from_numpy(np.ascontiguousarray(take(arrays[m]), dtype=np.float32))
        inputs.append(x.unsqueeze(1) if x.dim() == 3 else x)  # (N, H, W) → one channel
    return TensorSplit(inputs, torch.from_numpy(take(arrays["labels"]).astype(np.int64)))


def load_npz(root: str | Path | None = None, val_fraction: float = 0.1, val_seed: int = 0,
             device: str = "cpu") -> MultimodalDataset:
    """The ``Custom`` dataset from ``root``, default ``$MMRL_DATA/custom`` (format in the module docstring)."""
    path = resolve_root(root, "custom")
    if not path.is_dir():
        raise FileNotFoundError(f"Custom data directory {where_text(path, root is not None)} not found; expected "
                                f"{LAYOUT}. Pass {ELSEWHERE} or put the "
                                f"files in {path}")
    root = path
    meta = _meta(root)
    data = {s: _load(root / f"{s}.npz") for s in ("train", "test")}
    if (root / "val.npz").is_file():
        data["val"] = _load(root / "val.npz")
    modalities = list(meta.get("modalities") or sorted(k for k in data["train"] if k != "labels"))
    if not modalities:
        raise ValueError(f"{root / 'train.npz'} holds no modality arrays besides 'labels'")
    shapes: dict[str, tuple] = {}
    for split in ("train", "val", "test"):
        if split in data:
            _check(split, data[split], modalities, shapes)
    k = int(meta.get("num_classes") or 1 + max(int(d["labels"].max(initial=0)) for d in data.values()))
    check_limit("num_classes", k, f"{root}: the largest label + 1, i.e.")
    _check_labels(root, data, k)
    specs = []
    for m in modalities:
        enc = (meta.get("encoders") or {}).get(m)
        name, kwargs = (enc["name"], enc.get("kwargs", {})) if enc else _default_encoder(m, shapes[m])
        specs.append(ModalitySpec(m, name, kwargs))
    if "val" in data:
        train, val = _split(data["train"], modalities), _split(data["val"], modalities)
    else:
        kept, held = stratified_holdout(data["train"]["labels"], val_fraction, val_seed)
        if held.size == 0:
            raise ValueError(f"{root / 'train.npz'}: too few samples to hold out a validation split "
                             f"(val_fraction={val_fraction}); add samples or a val.npz")
        train, val = _split(data["train"], modalities, kept), _split(data["train"], modalities, held)
    test = _split(data["test"], modalities)
    ds = MultimodalDataset(meta.get("name", "Custom"), tuple(specs), k, train, val, test,
                           optim_defaults=dict(meta.get("optim", {})), source=root)
    return ds.to(device)
