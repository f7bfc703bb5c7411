"""The embedded ``Synthetic`` task: seeded, generated in well under a second, no download.

How it exhibits modality imbalance (docs/datasets.md, "Synthetic"; measured in BENCHMARKS.md):

* The **strong** modality ("audio") identifies the *group* of a class (classes come in
  groups of ``group_size``) with a large margin and only hints at the class inside the
  group. It is learned in a few iterations and quickly lowers the fused loss.
* The **weak** modality ("video") identifies every class, but its signal is small
  (``weak_scale``) and spread over many dimensions with per-dimension noise, so it learns
  slowly. Trained alone it reaches a good accuracy; trained jointly, the fused loss is
  already low thanks to the strong modality, the weak encoder only learns what the strong
  one lacks (the class inside the group), and its own unimodal accuracy falls well below its
  alone-accuracy.
* Fusing both is clearly better than either alone, so a rebalancing method has accuracy to
  recover.

Both forms share one latent generator: ``form="features"`` returns the vectors (MLP
encoders, fast on CPU); ``form="raw"`` renders the same latents as a 1×32×32
spectrogram-like map and ``frames`` small 3×16×16 frames (CNN encoders).
"""

from __future__ import annotations

import numpy as np
import torch

from mmrl_env.data.base import ModalitySpec, MultimodalDataset, TensorSplit
from mmrl_env.limits import check_limit


def _latents(
    rng: np.random.Generator, n: int, protos: dict[str, np.ndarray], cfg: dict
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = protos["weak"].shape[0]
    y = rng.integers(0, k, size=n)
    group = y // cfg["group_size"]
    strong = (
        protos["group"][group] + cfg["strong_hint"] * protos["hint"][y]
        + cfg["strong_noise"] * rng.standard_normal((n, protos["group"].shape[1]))
    )
    weak = cfg["weak_scale"] * (
        protos["weak"][y] + cfg["weak_noise"] * rng.standard_normal((n, protos["weak"].shape[1]))
    )
    return strong.astype(np.float32), weak.astype(np.float32), y


def _render(x: np.ndarray, basis: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Raw form: a fixed random linear 'renderer' from latent to a spatial signal."""
    return (x @ basis).reshape((x.shape[0], *shape)).astype(np.float32)


def load_synthetic(
    seed: int = 0,
    form: str = "features",
    num_classes: int = 8,
    group_size: int = 2,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 1000,
    strong_dim: int = 32,
    weak_dim: int = 64,
    strong_margin: float = 3.0,
    strong_hint: float = 0.5,
    strong_noise: float = 1.0,
    weak_scale: float = 0.12,
    weak_noise: float = 1.6,
    hidden: int = 128,
    feature_dim: int = 64,
) -> MultimodalDataset:
    """Generate the Synthetic task (same ``seed`` → same data, on every machine)."""
    sizes = dict(num_classes=num_classes, group_size=group_size, n_train=n_train, n_val=n_val, n_test=n_test,
                 strong_dim=strong_dim, weak_dim=weak_dim, hidden=hidden, feature_dim=feature_dim)
    for key, value in sizes.items():  # before anything is allocated
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"Synthetic {key}={value!r}: expected a positive integer")
        check_limit(key, int(value), "Synthetic")
    if num_classes < 2:
        raise ValueError(f"Synthetic num_classes={num_classes}: a classification task needs at least 2 classes")
    if form not in ("features", "raw"):
        raise ValueError(f"form must be 'features' or 'raw', got {form!r}")
    if num_classes % group_size:
        raise ValueError(f"num_classes ({num_classes}) must be a multiple of group_size ({group_size})")
    rng = np.random.default_rng(seed)
    n_groups = num_classes // group_size

    def unit(a: np.ndarray) -> np.ndarray:
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    protos = {
        "group": strong_margin * unit(rng.standard_normal((n_groups, strong_dim))),
        "hint": unit(rng.standard_normal((num_classes, strong_dim))),
        "weak": unit(rng.standard_normal((num_classes, weak_dim))) * np.sqrt(weak_dim) / 2.0,
    }
    cfg = dict(group_size=group_size, strong_hint=strong_hint * strong_margin,
               strong_noise=strong_noise, weak_scale=weak_scale, weak_noise=weak_noise)
    splits = [_latents(rng, n, protos, cfg) for n in (n_train, n_val, n_test)]

    if form == "features":
        modalities = (
            ModalitySpec("audio", "mlp", {"in_dim": strong_dim, "hidden": hidden, "out_dim": feature_dim}),
            ModalitySpec("video", "mlp", {"in_dim": weak_dim, "hidden": hidden, "out_dim": feature_dim}),
        )
        tensors = [(s, w, y) for s, w, y in splits]
    else:
        spec_shape, frame_shape = (1, 32, 32), (3, 16, 16)
        b_audio = rng.standard_normal((strong_dim, int(np.prod(spec_shape)))) / np.sqrt(strong_dim)
        b_video = rng.standard_normal((weak_dim, int(np.prod(frame_shape)))) / np.sqrt(weak_dim)
        modalities = (
            ModalitySpec("audio", "cnn", {"in_channels": 1, "out_dim": feature_dim}),
            ModalitySpec("video", "cnn", {"in_channels": 3, "out_dim": feature_dim}),
        )
        tensors = [(_render(s, b_audio, spec_shape), _render(w, b_video, frame_shape), y)
                   for s, w, y in splits]

    train, val, test = (
        TensorSplit([torch.from_numpy(s), torch.from_numpy(w)], torch.from_numpy(y)) for s, w, y in tensors
    )
    # lr 0.05: the tiny MLPs converge within the short default run (8 epochs); SGD as the audio-video reference.
    return MultimodalDataset(f"Synthetic-{form}", modalities, num_classes, train, val, test,
                             optim_defaults={"lr": 0.05})
