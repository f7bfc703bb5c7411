"""The embedded ``MFeat`` dataset: real handwritten digits described by six feature views.

UCI *Multiple Features* (R. P. W. Duin; CC BY 4.0, attribution in ``mfeat_data/README.md`` next to
the data): 2,000 digits 0–9 (200 per class) from Dutch utility maps, each described by six
feature sets computed from the same scanned image. Each chosen view is one modality with an
MLP encoder, so every run trains on the batched engine in seconds on a CPU; the file ships
inside the package (``mfeat_data/mfeat.npz``, 2 MB, rebuilt by ``python -m mmrl_env.data.mfeat_build``),
so nothing is ever downloaded.

=====  ========  ======================================  ==========
view   features  what                                    alone, val
=====  ========  ======================================  ==========
fac    216       profile correlations                    96.2 %
pix    240       pixel averages in 2×3 windows           95.6 %
kar    64        Karhunen–Loève coefficients             95.0 %
zer    47        Zernike moments                         82.8 %
fou    76        Fourier coefficients of the contours    80.9 %
mor    6         morphological features                  68.8 %
=====  ========  ======================================  ==========

(validation accuracy of the view's MLP trained alone with the defaults, mean of 10 seeds;
BENCHMARKS.md, "MFeat").

``views`` picks 2 to 6 of them, in the order given (that order is the modality order). The
default pair ``pix+zer`` was chosen on the validation split among all 15 pairs as the one
where joint training under-trains the weak view most (its unimodal accuracy 5.8 points below
the view trained alone) while the strong one loses nothing: the imbalance signature.
``WEAK_PAIR`` (``fou+zer``, two weak views of similar strength) and ``TRIPLE``
(``pix+fou+mor``, one strong and two weak) are the transfer benchmark's other sets
(BENCHMARKS.md, "MFeat").

Split: stratified by class with ``split_seed`` (default 0, the same split on every machine):
``test_fraction`` of every class is the test split, then ``val_fraction`` (of the whole set)
the validation split, the rest (60 % by default: 1,200 / 400 / 400) trains. Every feature is
standardised with the mean and standard deviation of the **training** split only (a constant
training feature keeps scale 1), so nothing of validation or test leaks into the inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from mmrl_env.data.base import ModalitySpec, MultimodalDataset, TensorSplit
from mmrl_env.data.mfeat_build import EMBEDDED, VIEWS
from mmrl_env.data.validation import stratified_holdout

DEFAULT_VIEWS = ("pix", "zer")
WEAK_PAIR = ("fou", "zer")
TRIPLE = ("pix", "fou", "mor")
NUM_CLASSES = 10
# Chosen on the validation split at the env's defaults (8 epochs, B = 64): lr 0.1 was 0.4 points better
# under plain joint training, but unstable once DUS-H doubles a view's loss (BENCHMARKS.md, "MFeat", "Run defaults").
MFEAT_OPTIM = {"lr": 0.05}


@lru_cache(maxsize=1)
def raw_views() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The six views (as stored: uint8/uint16/float32) and the labels, read once per process."""
    if not EMBEDDED.is_file():
        raise FileNotFoundError(f"the embedded MFeat file {EMBEDDED} is missing from this installation; "
                                "reinstall mmrl, or rebuild it: python -m mmrl_env.data.mfeat_build --src <csv folder>")
    with np.load(EMBEDDED, allow_pickle=False) as f:
        views = {v: f[v] for v in VIEWS}
        labels = f["labels"].astype(np.int64)
    for a in (*views.values(), labels):
        a.setflags(write=False)
    return views, labels


def check_views(views: Sequence[str] | str) -> tuple[str, ...]:
    """``views`` as a tuple of known, distinct view names (2 to 6); a string may join them with
    ``+`` or ``,`` (``"pix+fou+mor"``). Anything else is refused with the valid names."""
    if isinstance(views, str):
        views = [v.strip() for v in views.replace(",", "+").split("+")]
    try:
        views = tuple(views)
    except TypeError:
        raise ValueError(f"views must be a list of MFeat view names or a string like 'pix+zer', got {views!r}"
                         ) from None
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ValueError(f"unknown MFeat view(s) {unknown}; choose 2 to 6 of {', '.join(VIEWS)} "
                         f"(e.g. views={list(DEFAULT_VIEWS)} or views='pix+fou+mor')")
    repeated = sorted({v for v in views if views.count(v) > 1})
    if repeated:
        raise ValueError(f"MFeat view(s) {repeated} given more than once in views={list(views)}; each view is one "
                         "modality, name it once")
    if len(views) < 2:
        raise ValueError(f"views={list(views)}: a multimodal task needs at least 2 of {', '.join(VIEWS)}")
    return views


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be positive "
                         "and leave samples to train on (sum below 1)")


def split_indices(labels: np.ndarray, val_fraction: float, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) sample positions, stratified by class and fixed by ``seed``."""
    check_fractions(val_fraction, test_fraction)
    rest, test = stratified_holdout(labels, test_fraction, seed)
    kept, held = stratified_holdout(labels[rest], val_fraction / (1.0 - test_fraction), seed)
    return rest[kept], rest[held], test


def standardiser(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (mean, scale) of the training rows; a constant feature keeps scale 1."""
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    return mean, np.where(std > 1e-8, std, 1.0)


def standardised(views: Sequence[str], parts: Sequence[np.ndarray]) -> list[list[np.ndarray]]:
    """Per split (``parts``: sample positions, train first), the float32 views scaled with the
    statistics of ``parts[0]`` alone."""
    data, _ = raw_views()
    out: list[list[np.ndarray]] = [[] for _ in parts]
    for v in views:
        mean, scale = standardiser(data[v][parts[0]])
        for s, rows in enumerate(parts):
            out[s].append(((data[v][rows] - mean) / scale).astype(np.float32))
    return out


def load_mfeat(views: Sequence[str] | str = DEFAULT_VIEWS, split_seed: int = 0, val_fraction: float = 0.2,
               test_fraction: float = 0.2, hidden: int = 128, feature_dim: int = 64,
               device: str = "cpu") -> MultimodalDataset:
    """MFeat with the chosen ``views`` as modalities (module docstring: split, standardisation)."""
    views = check_views(views)
    data, labels = raw_views()
    parts = split_indices(labels, val_fraction, test_fraction, split_seed)
    train, val, test = (TensorSplit([torch.from_numpy(x) for x in xs], torch.from_numpy(labels[rows]))
                        for xs, rows in zip(standardised(views, parts), parts, strict=True))
    specs = tuple(ModalitySpec(v, "mlp", {"in_dim": data[v].shape[1], "hidden": hidden, "out_dim": feature_dim})
                  for v in views)
    name = "MFeat-" + "+".join(views)
    return MultimodalDataset(name, specs, NUM_CLASSES, train, val, test,
                             optim_defaults=dict(MFEAT_OPTIM)).to(device)
