"""MFeat views written as a ``Custom`` dataset (the user-data format of :mod:`mmrl_env.data.npz`),
optionally with a test split drawn from other sources than train and validation.

Why: a user's own data often has validation samples from the same sources as training
(speakers, writers, sessions) but test samples from unseen ones, so a policy that chases
validation accuracy can learn to memorise sources (issue 26). MFeat has no writer labels, so
``shift`` builds a principled stand-in:

* ``shift=None``: the split of :func:`~mmrl_env.data.mfeat.load_mfeat` (stratified, seeded);
  the written set is the same task as ``DUS-MFeat`` with the same ``views`` (same arrays).
* ``shift="clusters"`` (held-out **style clusters**, like unseen writers): within every class
  the digits are grouped by appearance — k-means (``n_clusters`` per class, seeded) on the
  standardised ``pix`` view, the image itself at low resolution, whatever ``views`` are
  written — and whole clusters, in a seeded random order, go to the test split while each
  brings the class closer to ``test_fraction`` of its samples. Validation is a stratified
  ``val_fraction`` of the remaining clusters, so it shares its sources with training while
  test does not (sizes vary a little with the clusters: 1,223 / 400 / 377 for seed 0; every
  class is in every split).
* ``shift="noise"`` (a degraded sensor): the split of ``shift=None``, with independent
  Gaussian noise of ``noise_std`` (default 1) training standard deviations added to every
  test feature (train and validation untouched; 1 doubles each feature's variance).

Measured (BENCHMARKS.md, "MFeat as Custom"): on ``pix+zer`` joint training's test accuracy
lies 3.7 points *below* validation with ``clusters`` and 2.5 *above* it without a shift.

In every case each view is standardised with the training split's statistics before it is
written (the format uses inputs as stored), and ``meta.json`` names the modalities in
``views`` order, the class count and MFeat's optimiser defaults, so the set loads with
``gymnasium.make("DUS-Custom", data_root=root)`` exactly as a user's data would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans

from mmrl_env.data.mfeat import (
    DEFAULT_VIEWS,
    MFEAT_OPTIM,
    NUM_CLASSES,
    check_fractions,
    check_views,
    raw_views,
    split_indices,
    standardised,
    standardiser,
)
from mmrl_env.data.validation import stratified_holdout

SHIFTS = (None, "clusters", "noise")


def style_clusters(labels: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """(N,) cluster id per sample, unique across classes: k-means on the standardised ``pix``
    view within each class (``n_clusters`` per class)."""
    pix = raw_views()[0]["pix"].astype(np.float64)
    mean, scale = standardiser(pix)
    pix = (pix - mean) / scale
    out = np.empty(labels.size, np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        km = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit(pix[rows])
        out[rows] = c * n_clusters + km.labels_
    return out


def cluster_split(labels: np.ndarray, clusters: np.ndarray, val_fraction: float, test_fraction: float,
                  seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) positions: whole clusters to test (per class, in a seeded order, while
    each brings the class closer to ``test_fraction``; at least one), then a stratified
    ``val_fraction`` of all samples held out of the rest."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        ids = rng.permutation(np.unique(clusters[labels == c]))
        need, taken = test_fraction * np.sum(labels == c), 0
        for cid in ids[:-1]:  # never every cluster of a class: training keeps some of each
            rows = np.flatnonzero(clusters == cid)
            if taken and abs(taken + rows.size - need) >= abs(taken - need):
                break  # this cluster would take the class further from its test fraction
            test.append(rows)
            taken += rows.size
    test_rows = np.sort(np.concatenate(test))
    rest = np.setdiff1d(np.arange(labels.size), test_rows)
    kept, held = stratified_holdout(labels[rest], val_fraction * labels.size / rest.size, seed)
    return rest[kept], rest[held], test_rows


def write_mfeat_custom(root: str | Path, views: Sequence[str] | str = DEFAULT_VIEWS, shift: str | None = None,
                       split_seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2,
                       n_clusters: int = 8, noise_std: float = 1.0) -> Path:
    """Write ``views`` of MFeat to ``root`` as ``train.npz``, ``val.npz``, ``test.npz`` and
    ``meta.json`` (module docstring: what ``shift`` does). Returns ``root``."""
    views = check_views(views)
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; choose one of {', '.join(map(repr, SHIFTS))}")
    if shift == "noise" and not (np.isfinite(noise_std) and noise_std > 0):
        raise ValueError(f"noise_std must be a positive number of training standard deviations, got {noise_std}")
    if shift == "clusters" and not (isinstance(n_clusters, int) and n_clusters >= 2):
        raise ValueError(f"n_clusters must be an integer >= 2 (style clusters per class), got {n_clusters!r}")
    check_fractions(val_fraction, test_fraction)
    labels = raw_views()[1]
    if shift == "clusters":
        parts = cluster_split(labels, style_clusters(labels, n_clusters, split_seed), val_fraction, test_fraction,
                              split_seed)
    else:
        parts = split_indices(labels, val_fraction, test_fraction, split_seed)
    arrays = standardised(views, parts)
    if shift == "noise":
        rng = np.random.default_rng(split_seed)
        arrays[2] = [(x + noise_std * rng.standard_normal(x.shape)).astype(np.float32) for x in arrays[2]]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, xs, rows in zip(("train", "val", "test"), arrays, parts, strict=True):
        np.savez(root / f"{name}.npz", labels=labels[rows], allow_pickle=False, **dict(zip(views, xs, strict=True)))
    meta = {"name": "MFeat-custom-" + "+".join(views) + (f"-{shift}" if shift else ""), "modalities": list(views),
            "num_classes": NUM_CLASSES, "optim": dict(MFEAT_OPTIM),
            "source": {"views": list(views), "shift": shift, "split_seed": split_seed, "val_fraction": val_fraction,
                       "test_fraction": test_fraction, "n_clusters": n_clusters, "noise_std": noise_std}}
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    return root
