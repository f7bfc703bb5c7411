"""K inner runs one after another, behind the K-run trainer interface.

The batched engine (:class:`~mmrl_env.engine.trainer.VectorTrainer`) covers the learners and
encoders that ``vmap`` expresses. Everything else — a learner not yet ported to the run
axis, or the big encoders (ResNet, BERT, I3D), which already fill a GPU at B = 64 so that a
run axis would buy little — runs here: K ordinary :class:`~mmrl_env.trainer.InnerTrainer`
runs stepped in turn, with the same ``train`` / ``train_epoch`` / ``predict`` / ``reset``
signatures and per-iteration hooks in the K-run format. The envs cannot tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from mmrl_env.data.base import MultimodalDataset, Split
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput, prefix_masks
from mmrl_env.learners.base import Batch, StepOutput
from mmrl_env.trainer import InnerTrainer, TrainerConfig

VectorHook = Callable[[VectorBatch, VectorStepOutput], None]


class SequentialTrainer:
    """K :class:`InnerTrainer` runs on one device, stepped one after another."""

    batched = False

    def __init__(self, dataset: MultimodalDataset, cfg: TrainerConfig, num_runs: int,
                 device: str | torch.device = "auto") -> None:
        if num_runs < 1:
            raise ValueError(f"num_runs must be at least 1, got {num_runs}")
        first = InnerTrainer(dataset, cfg, device)
        cfg = first.cfg  # the learner kwargs under their current names: old names warn once, above
        self.runs = [first] + [InnerTrainer(first.dataset, cfg, first.device) for _ in range(num_runs - 1)]
        self.cfg, self.num_runs, self.device, self.dataset = cfg, num_runs, first.device, first.dataset
        self.iterations_per_epoch, self.total_iterations = first.iterations_per_epoch, first.total_iterations
        self.generators = [t.generator for t in self.runs]

    @property
    def iteration(self) -> Tensor:
        return torch.tensor([t.iteration for t in self.runs], dtype=torch.long)

    @property
    def epoch(self) -> Tensor:
        return torch.tensor([t.epoch for t in self.runs], dtype=torch.long)

    @property
    def done(self) -> Tensor:
        return self.iteration >= self.total_iterations

    @property
    def learner(self) -> Any:
        """Run 0's learner (the single env's, for inspection)."""
        return self.runs[0].learner

    def run_info(self, run: int) -> dict[str, Any]:
        """Learner-specific quantities of one run (classifier counts, ω, ...)."""
        return self.runs[run].learner.info()

    def reset(self, seeds: Sequence[int], runs: Sequence[int] | None = None) -> None:
        runs = list(range(self.num_runs)) if runs is None else list(runs)
        if len(seeds) != len(runs):
            raise ValueError(f"got {len(seeds)} seeds for {len(runs)} runs; pass one seed per run")
        for run, seed in zip(runs, seeds, strict=True):
            self.runs[run].reset(int(seed))

    def _hooks(self, run: int, hooks: tuple[VectorHook, ...]) -> tuple[Callable[[Batch, StepOutput], None], ...]:
        """One run's single-format hook calls, re-expressed in the K-run format (other runs empty)."""
        if not hooks:
            return ()

        def call(batch: Batch, out: StepOutput) -> None:
            k, m = self.num_runs, len(batch.inputs)
            counts = [y.numel() for y in batch.labels]  # host ints: no device read per iteration
            host = torch.zeros(k, m, dtype=torch.long)
            host[run] = torch.tensor(counts)
            sizes = host.to(self.device)
            n = max(1, *counts)
            labels = torch.zeros(k, n, dtype=torch.long, device=self.device)
            longest = max(batch.labels, key=len)
            labels[run, : longest.numel()] = longest
            logits = []
            for z in out.unimodal_logits:
                padded = z.new_zeros(k, n, z.shape[-1])
                padded[run, : z.shape[0]] = z
                logits.append(padded)
            unknown = torch.full_like(labels, -1)  # a single Batch carries no indices: hooks get labels and logits
            vb = VectorBatch(unknown, [], labels, sizes, prefix_masks(sizes, n), batch.batch_size, host_sizes=host)
            loss = torch.zeros(k, device=self.device)
            loss[run] = out.loss
            vout = VectorStepOutput(loss, logits, sizes.amax(1) > 0)
            for hook in hooks:
                hook(vb, vout)

        return (call,)

    def train(self, iterations: int, sizes: Sequence[Sequence[int]] | Tensor, active: Tensor | None = None,
              hooks: tuple[VectorHook, ...] = ()) -> Tensor:
        """As ``VectorTrainer.train``: run k trains ``iterations`` updates with ``sizes[k]``."""
        sizes = torch.as_tensor(sizes, dtype=torch.long).cpu()
        loss = torch.zeros(self.num_runs, device=self.device)
        for k, trainer in enumerate(self.runs):
            if active is not None and not bool(active[k]):
                continue
            loss[k] = trainer.train(iterations, sizes[k].tolist(), hooks=self._hooks(k, hooks))
        return loss

    def train_epoch(self, orders: Sequence[Tensor | None], hooks: tuple[VectorHook, ...] = ()) -> Tensor:
        """As ``VectorTrainer.train_epoch``: one epoch per run over its own order (``None``: rests)."""
        if len(orders) != self.num_runs:
            raise ValueError(f"got {len(orders)} orders for {self.num_runs} runs; pass None for a run that rests")
        loss = torch.zeros(self.num_runs, device=self.device)
        for k, (trainer, order) in enumerate(zip(self.runs, orders, strict=True)):
            if order is not None:
                loss[k] = trainer.train_epoch(order, hooks=self._hooks(k, hooks))
        return loss

    def predict(self, split: Split, idx: Tensor | None = None) -> tuple[VectorPrediction, Tensor]:
        preds = [t.predict(split, idx) for t in self.runs]
        fused = torch.stack([p.fused for p, _ in preds])
        uni = [torch.stack([p.unimodal[j] for p, _ in preds]) for j in range(self.dataset.num_modalities)]
        multi = None if preds[0][0].multi is None else torch.stack([p.multi for p, _ in preds])
        return VectorPrediction(fused, uni, multi), preds[0][1]

    def state_dict(self) -> dict[str, Any]:
        return {"runs": [t.state_dict() for t in self.runs]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for trainer, s in zip(self.runs, state["runs"], strict=True):
            trainer.load_state_dict(s)
