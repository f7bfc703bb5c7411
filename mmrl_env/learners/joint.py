"""``joint``: plain joint training with unimodal auxiliary heads (BSS eq. 5 and eq. 12), for K runs.

Loss (1−α)·CE(z_multi) + α·Σ_j CE(z_j); inference z_multi + Σ_j z_j. Run k is one inner run
with run k's seed: its own model (built from its generator alone), optimizer and StepLR. A run's
batch is a prefix per modality of one shared window (modality j: the first n_j rows; the fusion
loss: the first n_common = min_j n_j rows, common to every modality), expressed with per-sample
masks so runs with different n_kj share the step (:mod:`mmrl_env.engine.batch`). Each unimodal
CE is summed over its rows and divided by the reference batch size B (so a modality given more
samples gets a proportionally larger signal — what DUS's sample quantity controls); the fusion
CE is the mean over the common rows.

The step is the explicit MLP kernel (:mod:`mmrl_env.engine.kernels`: ``bmm`` forward and a
hand-written backward, ~3× cheaper than ``vmap`` at K = 1 on a CPU) where it covers the model
(MLP encoders, ``concat``/``sum`` fusion), the loss is this class's own and the runs are
batched; otherwise :meth:`JointLearner._loss` under ``grad_and_value``, mapped over the runs
(``vmap``, or the per-run loop of the big encoders: :mod:`mmrl_env.engine.runs`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import grad_and_value

from mmrl_env.data.base import MultimodalDataset
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.batchnorm import encode_rows
from mmrl_env.engine.kernels import MLPJointKernel
from mmrl_env.engine.optim import OptimConfig, StackedOptimizer
from mmrl_env.learners.base import StackedLearner, column_ranges
from mmrl_env.models.multimodal import MultimodalNet


def sum_terms(terms: Iterable[Tensor]) -> Tensor:
    """Σ of loss terms, left to right (``sum()`` starts from the int 0 and is typed ``Tensor | int``)."""
    return functools.reduce(operator.add, terms)


def joint_objective(uni: Tensor, fused: Tensor | None, alpha: float) -> Tensor:
    """α·Σ_j CE_j + (1−α)·CE_multi (no fusion term when ``fused`` is None)."""
    loss = alpha * uni
    return loss if fused is None else loss + (1 - alpha) * fused


def check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")


def per_sample_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy per row. ``nn.functional.cross_entropy`` under ``vmap`` runs a Python
    decomposition of ``nll_loss``; log-softmax + gather has native batching rules."""
    return -logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def masked_batch_normalised_ce(logits: Tensor, labels: Tensor, mask: Tensor, batch_size: int) -> Tensor:
    """Cross-entropy summed over the rows where ``mask`` is 1 and divided by the reference batch
    size B: with every one of B rows valid it is the ordinary mean; a modality given more samples
    gets a proportionally larger learning signal (DUS's sample quantity). The shape does not
    depend on how many rows are valid, so runs with different counts share one step."""
    return (per_sample_ce(logits, labels) * mask).sum() / batch_size


def masked_mean_ce(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy over the rows where ``mask`` is 1 (0 when there are none)."""
    return (per_sample_ce(logits, labels) * mask).sum() / mask.sum().clamp(min=1)


class JointNet(MultimodalNet):
    """``MultimodalNet`` with a forward for ``functional_call`` (same construction and parameter
    names, so run k's weights load into a plain ``MultimodalNet`` and back)."""

    trim_rows = False  # set by the learner for the per-run loop (see ``encode_rows``)

    def forward(self, inputs: list[Tensor], masks: Tensor | None = None,
                bn_stats: dict[str, Any] | None = None) -> tuple[list[Tensor], Tensor]:
        """Unimodal logits per modality and fused logits z_multi for every row. In training,
        ``masks`` (M, N) tells each modality's BatchNorm layers which rows are real."""
        feats = self.features(inputs, masks, bn_stats)
        logits = [head(u) for head, u in zip(self.heads, feats, strict=True)]
        return logits, self.fusion(feats)

    def features(self, inputs: list[Tensor], masks: Tensor | None = None,
                 bn_stats: dict[str, Any] | None = None) -> list[Tensor]:
        """Each modality's encoder features u_j; in training, BatchNorm counts only its valid rows."""
        return [encode_rows(functools.partial(self.encode, j), x, None if masks is None else masks[j], bn_stats,
                            self.training, self.trim_rows) for j, x in enumerate(inputs)]


class JointLearner(StackedLearner):
    """K joint runs as stacked tensors: parameters, optimizer state, lr.

    ``alpha`` weighs the unimodal heads (BSS paper eq. 5, α = 0.2); ``fusion`` picks the fusion head.
    """

    def __init__(self, dataset: MultimodalDataset, optim: OptimConfig, device: torch.device,
                 generators: Sequence[torch.Generator], alpha: float = 0.2, fusion: str = "concat") -> None:
        check_alpha(alpha)
        self.alpha = alpha
        super().__init__(lambda: JointNet(dataset.modalities, dataset.num_classes, fusion), dataset, optim, device,
                         generators)
        # one optimizer over every column (not a group: it takes the all-active fast path)
        self.optimizer = StackedOptimizer(self.stack.flat, optim)
        self._fusion_cols = torch.cat([torch.arange(a, b) for a, b in
                                       column_ranges(self.stack, lambda n: n.startswith("fusion."))]).to(device)
        self._train_fn = self.map_runs(grad_and_value(self._loss, has_aux=True), (0, 0, 0, 0, 0, None))
        self._kernel = self._build_kernel()

    def _build_kernel(self) -> MLPJointKernel | None:
        """The explicit MLP kernel (:mod:`mmrl_env.engine.kernels`) where it computes exactly
        this learner's step: the model is covered and neither :meth:`_loss` nor :meth:`_forward`
        is overridden (a subclass that changes the loss gets the generic ``vmap`` path)."""
        cls = type(self)
        if cls._loss is not JointLearner._loss or cls._forward is not JointLearner._forward:
            return None
        return MLPJointKernel.build(self.stack.template, self.stack.params, self.stack.columns)

    def _reset_state(self, runs: list[int], generators: Sequence[torch.Generator]) -> None:
        self.optimizer.reset_runs(torch.as_tensor(runs, dtype=torch.long, device=self.device))

    def _loss(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor], labels: Tensor,
              masks: Tensor, batch_size: int) -> tuple[Tensor, tuple[list[Tensor], dict[str, Any]]]:
        """One run's loss on its (P,) parameter row (mapped over the runs by ``map_runs``): the
        joint objective with masked terms."""
        stats: dict[str, Any] = {}
        logits, z_multi = self._run_model(flat, buffers, inputs, masks, stats)
        logits = [z.float() for z in logits]
        uni = sum_terms(masked_batch_normalised_ce(z, labels, m, batch_size)
                        for z, m in zip(logits, masks, strict=True))
        fused = masked_mean_ce(z_multi.float(), labels, masks.amin(dim=0))
        loss = joint_objective(uni, fused, self.alpha)
        return loss, ([z.detach() for z in logits], stats)

    def train_step(self, batch: VectorBatch) -> VectorStepOutput:
        """One update of every active run (a run with all sizes 0 keeps its state exactly):
        :meth:`loss_and_grads`, then :meth:`apply_update`."""
        self._set_training(True)
        grads, loss, logits, stats = self.loss_and_grads(batch)
        self.apply_update(grads, batch, stats)
        return VectorStepOutput(loss.detach() * batch.active, logits, batch.active)

    def loss_and_grads(self, batch: VectorBatch) -> tuple[Tensor, Tensor, list[Tensor], dict[str, Any]]:
        """Every run's loss (K,) and gradient (K, P) w.r.t. ``stack.flat``, the unimodal logits
        (K, N, C) and the BatchNorm batch statistics. The explicit MLP kernel when it covers the
        model and :meth:`_loss` is this class's own; else ``vmap(grad_and_value(self._loss))``."""
        if self._kernel is not None and self.vectorize:
            rows, common = batch.row_limits()
            with self._autocast():
                step = self._kernel.loss_and_grads(batch.inputs, batch.labels, batch.masks, rows, common,
                                                   batch.batch_size, self.alpha, exact_out=not self.amp)
            return step.grads, step.loss, step.logits, {}
        grads, (loss, (logits, stats)) = self._train_fn(self.stack.flat, self.stack.buffers, batch.inputs,
                                                        batch.labels, batch.masks, batch.batch_size)
        return grads, loss, logits, stats

    def apply_update(self, grads: Tensor, batch: VectorBatch, stats: dict[str, Any]) -> None:
        """The optimizer step of the active runs and their BatchNorm running statistics.

        A run with no row common to all modalities (DUS with n_min = 0) has no fusion loss, so
        its fusion head has no gradient and, as ``torch.optim`` skips such a parameter, must not
        move (no weight decay, no momentum). Its columns are put back after the step, so that
        run's fusion head and optimizer state stay as they were (SGD exactly; Adam's shared step
        count still advances, the one difference from ``torch.optim.Adam`` left)."""
        active = batch.active
        idle = (batch.host_active() & (batch.host_n_common() == 0)).nonzero().squeeze(1)  # host: no device sync
        tensors = (self.stack.flat, *self.optimizer.state.values())
        if idle.numel():
            rows, cols = idle.to(self.device)[:, None], self._fusion_cols
            kept = [t[rows, cols].clone() for t in tensors]
        self.optimizer.step(self.stack.flat, grads, self.lr_schedule.lr, active, all_active=batch.all_active())
        if idle.numel():
            for t, old in zip(tensors, kept, strict=True):
                t[rows, cols] = old
        self.update_batchnorm(stats, active)

    @torch.no_grad()
    def predict(self, inputs: list[Tensor], per_run: bool = False) -> VectorPrediction:
        """Every run's fused, unimodal and z_multi logits on ``inputs``: shared (N, ...) tensors,
        or (K, N, ...) with ``per_run``."""
        self._set_training(False)
        if self._kernel is not None and self.vectorize:
            k = self.num_runs
            inputs = inputs if per_run else [x.expand(k, *x.shape) for x in inputs]
            with self._autocast():
                uni, multi = self._kernel.forward(inputs)
            uni, multi = [z.float() for z in uni], multi.float()
            return VectorPrediction(multi + torch.stack(uni).sum(0), uni, multi)
        uni, multi = self._predict_fn(per_run)(self.stack.flat, self.stack.buffers, inputs)
        return VectorPrediction(multi + torch.stack(uni).sum(0), uni, multi)

    def _forward(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor]) -> tuple[list[Tensor], Tensor]:
        logits, z_multi = self._run_model(flat, buffers, inputs)
        return [z.float() for z in logits], z_multi.float()

    def _extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
