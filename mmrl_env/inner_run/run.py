"""The inner run: K independent inner training runs on one device, trained as one (K = 1: one run).

Run k owns a private ``torch.Generator`` seeded by its own seed (model initialisation, batch
order, every random draw of its learner; SB3 seeds torch globally, so we must not depend on the
global RNG), its :class:`~mmrl_env.inner_run.stream.ShuffledStream`, iteration/epoch counters,
model, optimizer state and StepLR, so run k depends on its own seed, sizes and orders only: it
reproduces the same run trained alone (K = 1) to float tolerance (batched kernels sum in another
order). Per step, the runs' index windows are drawn per run (a cheap loop over index streams),
padded to one common length and trained in one step: batched (``vectorize=True``: ``vmap`` or
the explicit MLP kernel, each modality only computing the rows some run uses; the model work
never loops over runs) or, for the big encoders, the same per-run step in a loop
(``vectorize=False``, :mod:`mmrl_env.engine.runs`). ``gym.make`` envs (K = 1), ``make_vec``
envs, ``train_mml.py`` and the benchmarks all train through this class; environments drive it in
decision intervals (``train``, ``train_epoch``).

Learners: :mod:`mmrl_env.learners` (``learner=`` by name). Memory format: contiguous on the
batched path (``channels_last`` breaks ``vmap``), channels-last convolutions on the per-run
loop on CUDA (:mod:`mmrl_env.engine.stack`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from mmrl_env.data.base import MultimodalDataset, Split
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput, prefix_masks
from mmrl_env.inner_run.settings import InnerRunConfig, resolve_device
from mmrl_env.inner_run.stream import ShuffledStream
from mmrl_env.learners import build_learner, check_learner
from mmrl_env.learners.base import StackedLearner
from mmrl_env.metrics import prediction_metrics
from mmrl_env.models.encoders import check_encoder, check_encoder_input

# input values per prediction chunk (64 MB of float32): 1,024 Synthetic samples, 33 CREMA-D clips at 224 px
EVAL_CHUNK_ELEMENTS = 2**24

RunHook = Callable[[VectorBatch, VectorStepOutput], None]


class InnerRun:
    """K inner training runs on one device; ``reset`` (all runs or some) starts new runs."""

    def __init__(self, dataset: MultimodalDataset, cfg: InnerRunConfig, num_runs: int,
                 device: str | torch.device = "auto", vectorize: bool = True) -> None:
        if num_runs < 1:
            raise ValueError(f"num_runs must be at least 1, got {num_runs}")
        # an unknown learner or learner kwarg fails here, at construction, naming the valid ones
        cfg = replace(cfg, learner_kwargs=check_learner(cfg.learner, cfg.learner_kwargs))
        for spec in dataset.modalities:  # missing pretrained weights fail here, before any run starts
            check_encoder(spec.encoder, **spec.encoder_kwargs)
        self.cfg, self.num_runs, self.vectorize = cfg, num_runs, bool(vectorize)
        self.device = resolve_device(device)
        self.dataset = dataset.to(self.device)
        n_train = len(self.dataset.train)
        if cfg.batch_size > n_train:
            raise ValueError(f"batch_size={cfg.batch_size} is larger than the training split "
                             f"({n_train} samples of {dataset.name}); use batch_size <= {n_train}")
        train = self.dataset.run_view(self.dataset.train)
        for j, spec in enumerate(dataset.modalities):  # a task family pads every task to these sizes
            check_encoder_input(spec.name, spec.encoder, dict(spec.encoder_kwargs),
                                train.gather_runs(j, torch.zeros(1, 1, dtype=torch.long))[0])
        self.iterations_per_epoch = max(1, math.ceil(len(self.dataset.train) / cfg.batch_size))
        self.total_iterations = cfg.epochs * self.iterations_per_epoch
        self.generators = [torch.Generator() for _ in range(num_runs)]
        # built from the generators' default state; the first reset rebuilds every run from its seed
        self.learner: StackedLearner = build_learner(cfg.learner, self.dataset, cfg.optim, self.device,
                                                     self.generators, **cfg.learner_kwargs)
        self.learner.set_vectorize(self.vectorize)
        self.learner.set_run_length(cfg.epochs, self.iterations_per_epoch)  # "auto" periods scale with it
        self.streams = [ShuffledStream(len(self.dataset.train), g) for g in self.generators]
        self.iteration = torch.zeros(num_runs, dtype=torch.long)  # host counter: control flow, no sync
        self.started = False  # no run has been reset yet: the first reset starts every run
        self._eval_chunk: int | None = None  # samples per prediction chunk (``eval_chunk``), set on first use

    @property
    def epoch(self) -> Tensor:
        """(K,) completed epochs per run (host): the learner's counter, which its StepLR and its
        periods (ACA, OGM's window) read; zeros before the first reset."""
        return self.learner.epoch

    @property
    def done(self) -> Tensor:
        """(K,) bool: every iteration of the run is spent."""
        return self.iteration >= self.total_iterations

    def reset(self, seeds: Sequence[int], runs: Sequence[int] | None = None,
              order_seeds: Sequence[int] | None = None) -> None:
        """Start new runs: ``seeds[i]`` for slot ``runs[i]`` (default: every slot, in order).

        A slot's run depends on its seed alone (not on K or on the other slots): the seed builds
        its model, then drives its data order and any later draw. ``order_seeds[i]`` (optional)
        re-seeds the run's generator once its model is built, so the initial weights and the data
        order can be varied separately (``bench/seed_noise.py`` measures how much of the
        seed-to-seed spread each causes)."""
        runs = list(range(self.num_runs)) if runs is None else list(runs)
        if len(seeds) != len(runs):
            raise ValueError(f"got {len(seeds)} seeds for {len(runs)} runs; pass one seed per run")
        if order_seeds is not None and len(order_seeds) != len(runs):
            raise ValueError(f"got {len(order_seeds)} order_seeds for {len(runs)} runs; pass one per run")
        if any(not 0 <= r < self.num_runs for r in runs):
            raise ValueError(f"runs must lie in [0, {self.num_runs}), got {runs}")
        if not self.started and len(runs) != self.num_runs:
            raise ValueError("the first reset must start every run (runs=None)")
        for run, seed in zip(runs, seeds, strict=True):
            self.generators[run].manual_seed(int(seed))
        self.dataset.draw(runs, [int(s) for s in seeds], self.num_runs)  # a task family: each run's task
        self.learner.reset_runs(runs, [self.generators[r] for r in runs])
        for run, seed in zip(runs, order_seeds if order_seeds is not None else [], strict=False):
            self.generators[run].manual_seed(int(seed))
        for run in runs:
            self.streams[run] = ShuffledStream(len(self.dataset.train), self.generators[run])
        self.iteration[runs] = 0
        self.started = True

    def make_batch(self, windows: list[Tensor], sizes: Tensor) -> VectorBatch:
        """The batch of one step: run k's window ``windows[k]`` (host train-split indices) with modality
        j on its first ``sizes[k, j]`` rows (``sizes`` (K, M), on the host). The windows are padded
        to one length (index 0; masked out) and the inputs gathered."""
        lengths = [w.numel() for w in windows]
        n = max(1, max(lengths))
        if all(length == n for length in lengths):
            idx = torch.stack(windows)
        else:
            idx = torch.zeros(self.num_runs, n, dtype=torch.long)
            for k, w in enumerate(windows):
                idx[k, : w.numel()] = w
        split = self.dataset.run_view(self.dataset.train)
        inputs = [split.gather_runs(j, idx, train=True) for j in range(self.dataset.num_modalities)]
        labels = split.gather_run_labels(idx)
        idx = idx.to(self.device, non_blocking=True)
        # non_blocking: a blocking host-to-device copy waits for the queued GPU work (a sync per step)
        device_sizes = sizes.to(self.device, non_blocking=True)
        return VectorBatch(idx, inputs, labels, device_sizes,
                           prefix_masks(device_sizes, n), self.cfg.batch_size, host_sizes=sizes)

    def _step(self, windows: list[Tensor], sizes: Tensor, hooks: tuple[RunHook, ...]) -> VectorStepOutput:
        batch = self.make_batch(windows, sizes)
        out = self.learner.train_step(batch)
        for hook in hooks:
            hook(batch, out)
        return out

    def _end_epoch(self, runs: Tensor) -> None:
        self.learner.on_epoch_end(runs)  # host (K,) bool: the learners' host counters read it without a sync

    def _sizes(self, sizes: Sequence[Sequence[int]] | Tensor) -> Tensor:
        sizes = torch.as_tensor(sizes, dtype=torch.long).cpu()
        expected = (self.num_runs, self.dataset.num_modalities)
        if sizes.shape != expected:
            raise ValueError(f"sizes must have shape (runs, modalities) = {expected}, got {tuple(sizes.shape)}")
        if (sizes < 0).any():
            raise ValueError("sizes must be non-negative sample counts")
        return sizes

    def train(self, iterations: int, sizes: Sequence[Sequence[int]] | Tensor, active: Tensor | None = None,
              hooks: tuple[RunHook, ...] = ()) -> Tensor:
        """Up to ``iterations`` updates of every active run from its shuffled stream (a run stops at
        its end). Run k's modality j gets the first ``sizes[k][j]`` samples of each window; an epoch
        ends every ``iterations_per_epoch`` updates. ``active`` (K,) bool leaves the other runs
        untouched. Returns each run's mean loss over its updates, (K,) on the device (no host sync)."""
        sizes = self._sizes(sizes)
        wanted = torch.ones(self.num_runs, dtype=torch.bool) if active is None else active.cpu().bool()
        total = torch.zeros(self.num_runs, device=self.device)
        count = torch.zeros(self.num_runs, dtype=torch.long)
        for _ in range(iterations):
            stepping = wanted & ~self.done
            if not stepping.any():
                break
            windows = [self.streams[k].next_window(int(sizes[k].max()), self.cfg.batch_size) if stepping[k]
                       else sizes.new_zeros(0) for k in range(self.num_runs)]
            out = self._step(windows, sizes * stepping.unsqueeze(1), hooks)
            total = total + out.loss
            self.iteration += stepping.long()
            count += stepping.long()
            ended = stepping & (self.iteration % self.iterations_per_epoch == 0)
            if ended.any():
                self._end_epoch(ended)
        return total / count.clamp(min=1).to(self.device)

    def train_epoch(self, orders: Sequence[Tensor | None], hooks: tuple[RunHook, ...] = ()) -> Tensor:
        """One epoch per run over its own ``orders[k]`` (e.g. its curriculum subset), in batches
        of B for every modality, then the epoch-end hooks; runs given ``None`` do not train. Runs whose order
        is shorter stop stepping (all-zero mask) while the longer ones finish. Returns each
        run's mean loss, (K,) on the device."""
        if len(orders) != self.num_runs:
            raise ValueError(f"got {len(orders)} orders for {self.num_runs} runs; pass None for a run that rests")
        b, m = self.cfg.batch_size, self.dataset.num_modalities
        parts = [[] if o is None else list(o.cpu().split(b)) for o in orders]
        steps = max(len(p) for p in parts)
        total = torch.zeros(self.num_runs, device=self.device)
        for s in range(steps):
            windows = [p[s] if s < len(p) else torch.zeros(0, dtype=torch.long) for p in parts]
            sizes = torch.tensor([[w.numel()] * m for w in windows], dtype=torch.long)
            out = self._step(windows, sizes, hooks)
            total = total + out.loss
            self.iteration += (sizes[:, 0] > 0).long()
        participating = torch.tensor([o is not None for o in orders])
        self._end_epoch(participating)
        return total / torch.tensor([max(len(p), 1) for p in parts], device=self.device)

    def predict(self, split: Split, idx: Tensor | None = None, chunk_size: int | None = None
                ) -> tuple[VectorPrediction, Tensor]:
        """Every run's predictions on ``split`` (or its subset ``idx``, the same samples for every
        run), in chunks of ``chunk_size`` (default :meth:`eval_chunk`, bounded in input values):
        (K, N, C) logits and the (K, N) labels (row k: run k's; the same row K times unless each run
        has its own task, :mod:`mmrl_env.data.tasks`). A host index (the default) lets a
        memory-mapped split read without waiting for the GPU."""
        if idx is None:
            idx = torch.arange(len(split))
        m, size, k = self.dataset.num_modalities, chunk_size or self.eval_chunk(split), self.num_runs
        view = self.dataset.run_view(split)
        chunks = [self.learner.predict([view.predict_inputs(j, part, k) for j in range(m)], per_run=view.per_run)
                  for part in idx.split(size)]
        labels = view.gather_run_labels(idx.expand(k, -1))
        fused = torch.cat([c.fused for c in chunks], dim=1)
        uni = [torch.cat([c.unimodal[j] for c in chunks], dim=1) for j in range(self.dataset.num_modalities)]
        heads = [c.multi for c in chunks if c.multi is not None]  # a fusion head's logits: every chunk or none
        multi = torch.cat(heads, dim=1) if heads else None
        return VectorPrediction(fused, uni, multi), labels

    def eval_chunk(self, split: Split) -> int:
        """Samples per prediction chunk: ``cfg.eval_batch_size``, fewer when a sample's inputs are
        large, so that a chunk holds at most :data:`EVAL_CHUNK_ELEMENTS` input values. Without
        the cap 1,024 CREMA-D clips (3 frames of 224 px each) would go through ResNet18 at once,
        tens of GB of activations on a CPU; the cap depends on the data only, never on K, so a
        run predicts the same whatever batch it is part of."""
        if self._eval_chunk is None:
            one = torch.zeros(1, 1, dtype=torch.long)  # one sample (of one run's task)
            view = self.dataset.run_view(split)
            per_sample = sum(view.gather_runs(j, one).numel() for j in range(self.dataset.num_modalities))
            self._eval_chunk = max(1, min(self.cfg.eval_batch_size, EVAL_CHUNK_ELEMENTS // max(per_sample, 1)))
        return self._eval_chunk

    def evaluate(self, split: Split, runs: Sequence[int]) -> list[dict[str, float]]:
        """Full metrics (acc, macro-F1, mAP; fused and per modality) of the current models of
        ``runs`` on ``split``, one dict per run: one batched prediction for every run."""
        if not runs:
            return []
        pred, y = self.predict(split)
        names = self.dataset.modality_names
        return [prediction_metrics(pred.fused[k], [z[k] for z in pred.unimodal], y[k], names) for k in runs]

    def run_info(self, run: int) -> dict[str, Any]:
        """Learner-specific quantities of one run (classifier counts, ω, OGM coefficients; {} for joint)."""
        return self.learner.run_info(run)

    def state_dict(self) -> dict[str, Any]:
        """Every run so far: learner state (its epoch counters too), streams, iteration counters and
        the private generators."""
        if not self.started:
            return {"started": False}
        state = {"started": True, "learner": self.learner.state_dict(),
                 "streams": [s.state_dict() for s in self.streams], "iteration": self.iteration.clone(),
                 "generators": [g.get_state() for g in self.generators]}
        task_seeds = self.dataset.task_seeds()  # a task family: the seed each slot's task was drawn from
        if task_seeds is not None:
            state["task_seeds"] = task_seeds
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``; generators last, since building the models draws from them."""
        if not state["started"]:
            self.started = False
            self.iteration.zero_()
            return
        self.reset(state.get("task_seeds", [0] * self.num_runs))  # a task family redraws each slot's task
        self.learner.load_state_dict(state["learner"])
        for stream, s in zip(self.streams, state["streams"], strict=True):
            stream.load_state_dict(s)
        iteration = state["iteration"]
        if not isinstance(iteration, torch.Tensor) or iteration.shape != self.iteration.shape \
                or iteration.min() < 0 or iteration.max() > self.total_iterations:
            raise ValueError(f"iteration counters {iteration!r} do not fit {self.num_runs} run(s) of "
                             f"{self.total_iterations} iterations")
        self.iteration.copy_(iteration)
        for g, s in zip(self.generators, state["generators"], strict=True):
            g.set_state(s)
