"""``SyntheticMix``: a family of synthetic tasks to train sampling policies on (issue 26).

Every inner run draws a fresh task from its seed (:class:`~mmrl_env.data.tasks.TaskFamilyDataset`),
so a policy trained here has seen many kinds of imbalance, and none of the benchmark data.
A task draws:

* **M** modalities (``modalities=2`` or ``3``, fixed per env: the observation and action
  sizes depend on it), the **class count** C in [3, ``max_classes``] (the heads have
  ``max_classes`` outputs; a task uses the first C), which modality is **strong**;
* the strong modality identifies the class *group* (groups of 1–3 classes) with margin
  2–4 and only hints at the class inside it — with groups of one it identifies every class
  and joint training suppresses nothing worth recovering; the other modalities carry every
  class with a learning speed (input scale 0.06–0.8) and a ceiling (noise 0.8–2.4) of their
  own: suppression ranges from none to strong, and in some tasks the weak modality is near
  its own ceiling, where the best action is to leave sampling alone;
* input **sizes** 8–64 per modality, zero-padded to ``feature_dim`` (so every run's batch has
  one shape and the K runs train as one batched step; a zero input dimension never moves
  its weights), the number of **distinct training samples** (300 to ``n_train``; the
  ``n_train`` rows of an epoch cycle through them, so small tasks overfit), and whether the
  features are standardised with train statistics, as real data usually is;
* with probability 0.35 a **source shift**: one modality's samples are noisy copies of a few
  "recordings" per class; train and validation reuse the same recordings, test uses unseen
  ones (the validation split is easier than test, as with shared speakers or sessions).

``tasks="train"`` and ``tasks="eval"`` draw from disjoint task indices (2·seed and 2·seed + 1),
so evaluation tasks are never training tasks. No benchmark dataset is in the family: its
generator is a randomised generalisation of ``Synthetic``'s mechanism, never its data.
"""

from __future__ import annotations

import numpy as np

from mmrl_env.data.base import ModalitySpec
from mmrl_env.data.tasks import Task, TaskFamilyDataset

TASK_SPLITS = ("train", "eval")


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


class SyntheticMix(TaskFamilyDataset):
    """The task family (module docstring); ``seed`` names the family, ``tasks`` its train or eval half."""

    def __init__(self, modalities: int = 2, tasks: str = "train", seed: int = 0, max_classes: int = 10,
                 n_train: int = 1536, n_val: int = 512, n_test: int = 1024, feature_dim: int = 64,
                 hidden: int = 128, out_dim: int = 64) -> None:
        if modalities not in (2, 3):
            raise ValueError(f"SyntheticMix draws tasks with 2 or 3 modalities, got modalities={modalities}")
        if tasks not in TASK_SPLITS:
            raise ValueError(f"tasks must be 'train' or 'eval' (disjoint task draws), got {tasks!r}")
        if max_classes < 3:
            raise ValueError(f"max_classes must be at least 3, got {max_classes}")
        if feature_dim < 8:
            raise ValueError(f"feature_dim must be at least 8 (the smallest drawn input size), got {feature_dim}")
        self.m, self.tasks, self.seed = modalities, tasks, seed
        self.sizes = (n_train, n_val, n_test)
        self.feature_dim = feature_dim
        names = tuple(f"m{j}" for j in range(modalities))
        specs = tuple(ModalitySpec(n, "mlp", {"in_dim": feature_dim, "hidden": hidden, "out_dim": out_dim})
                      for n in names)
        super().__init__(f"SyntheticMix-{modalities}-{tasks}", specs, max_classes, optim_defaults={"lr": 0.05})

    def task_rng(self, seed: int) -> np.random.Generator:
        """The generator of the task a run seeded ``seed`` draws (train and eval indices are disjoint)."""
        return np.random.default_rng([self.seed, 2 * int(seed) + (self.tasks == "eval")])

    def make_task(self, seed: int) -> Task:
        rng = self.task_rng(seed)
        m, dmax = self.m, self.feature_dim
        c = int(rng.integers(3, self.num_classes + 1))
        strong = int(rng.integers(m))
        group = int(rng.choice([1, 2, 3], p=[0.3, 0.5, 0.2]))
        dims = [int(rng.integers(8, dmax + 1)) if j == strong else int(rng.integers(16, dmax + 1)) for j in range(m)]
        margin, hint = rng.uniform(2.0, 4.0), rng.uniform(0.0, 0.6)
        scales = np.exp(rng.uniform(np.log(0.06), np.log(0.8), m))
        noises = rng.uniform(0.8, 2.4, m)
        n_unique = int(rng.integers(min(300, self.sizes[0]), self.sizes[0] + 1))
        standardise = bool(rng.random() < 0.5)
        shifted = int(rng.integers(m)) if rng.random() < 0.35 else None
        n_groups = -(-c // group)
        protos = []
        for j in range(m):
            if j == strong:
                g = margin * _unit(rng.standard_normal((n_groups, dims[j])))
                h = hint * margin * _unit(rng.standard_normal((c, dims[j])))
                protos.append(g[np.arange(c) // group] + h)
            else:
                protos.append(_unit(rng.standard_normal((c, dims[j]))) * np.sqrt(dims[j]) / 2.0)
        recordings = {}
        if shifted is not None:  # per class: a few fixed "recordings" (big fixed noise), seen ones and unseen ones
            per_class = int(rng.integers(3, 9))
            for part in ("seen", "unseen"):
                spread = 1.5 * (1.0 if shifted == strong else noises[shifted])
                recordings[part] = spread * rng.standard_normal((c, per_class, dims[shifted]))

        def sample(n: int, part: str) -> tuple[list[np.ndarray], np.ndarray]:
            y = rng.integers(0, c, n)
            xs = []
            for j in range(m):
                scale, noise = (1.0, 1.0) if j == strong else (scales[j], noises[j])
                if j == shifted:  # a fixed recording's noise plus a little jitter
                    rec = recordings[part][y, rng.integers(0, recordings[part].shape[1], n)]
                    xs.append(scale * (protos[j][y] + rec + 0.3 * rng.standard_normal((n, dims[j]))))
                else:
                    xs.append(scale * (protos[j][y] + noise * rng.standard_normal((n, dims[j]))))
            return xs, y

        train_x, train_y = sample(n_unique, "seen")
        rows = np.arange(self.sizes[0]) % n_unique  # the epoch's rows cycle through the distinct samples
        train = ([x[rows] for x in train_x], train_y[rows])
        val, test = sample(self.sizes[1], "seen"), sample(self.sizes[2], "unseen")
        splits = [train, val, test]
        if standardise:
            stats = [(x.mean(0), x.std(0) + 1e-6) for x in train_x]
            splits = [([(x - mu) / sd for x, (mu, sd) in zip(xs, stats, strict=True)], y) for xs, y in splits]
        padded = tuple(([np.pad(x, ((0, 0), (0, dmax - x.shape[1]))).astype(np.float32) for x in xs],
                        y.astype(np.int64)) for xs, y in splits)
        info = {"classes": c, "strong": strong, "group": group, "dims": dims, "scales": scales.round(3).tolist(),
                "noises": noises.round(2).tolist(), "distinct_train": n_unique, "standardised": standardise,
                "shifted": shifted}
        return Task(padded, c, info)


def load_synthetic_mix(**kwargs) -> SyntheticMix:
    """Registry loader of ``SyntheticMix`` (kwargs: see :class:`SyntheticMix`)."""
    return SyntheticMix(**kwargs)
