"""``mla``: multimodal learning by alternating unimodal adaptation (MLA), for K runs.

Modalities take turns: each batch runs one optimizer step per modality, encoder j and the
ONE shared head trained on modality j's own n_j samples. Alternating removes the joint
loss through which the strong modality starves the weak one; sharing the head keeps the
modalities in one decision space.

Head-gradient projection (``project``), so learning modality j does not undo what the head
learned for the others:

- ``True`` / ``"gs"``: the released algorithm (``GSPlugin.before_update`` of the MLA code). One
  D×D projector P (D = feature dim, P₀ = I) persists for the whole run. Before every
  optimizer step except the run's very first, with r the mean feature of the batch just
  used and a = 0.1^(1 + b/L) (b: batch index in the epoch, L: batches per epoch):
  k = P·rᵀ, P ← P − k·kᵀ / (a + r·k), P ← P / ‖P‖_F, and the head's weight gradient
  G ← G·Pᵀ (the bias is left alone). The release's own call never matches its parameter name,
  so it never projects (docs/design.md, "Inner learners"); here it does when enabled.
- ``"batch"``: our earlier variant: per batch, modality j's whole head gradient minus its
  components along the earlier modalities' head gradients of the same batch (Gram–Schmidt);
  no state across batches.

Per run (run k = one inner run with its own seed): the alternation is over modalities, not
runs: per batch, for j = 1..M, one gradient of modality j's loss for every run (encoder j and
the shared head on run k's n_kj rows), the head-gradient projection, then one optimizer step
of encoder j's and the head's parameter groups (:mod:`mmrl_env.learners.base`) — so the head
steps M times per batch and each encoder once, each group with its own optimizer state and
Adam step count. ``"gs"`` keeps each run's D×D projector P, its step count and its batch index
(K, ...) and updates them with :func:`gs_projector_step` under ``vmap``; a run's first optimizer
step is left as is, per run. ``"batch"`` applies :func:`project_orthogonal` per run. The batch's
mean feature r is a masked mean over the run's n_kj rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from mmrl_env.data.base import MultimodalDataset
from mmrl_env.engine.batch import VectorBatch, VectorPrediction, VectorStepOutput
from mmrl_env.engine.batchnorm import encode_rows
from mmrl_env.engine.optim import OptimConfig
from mmrl_env.engine.stack import prefixed
from mmrl_env.learners.base import StackedLearner, column_ranges
from mmrl_env.learners.joint import masked_batch_normalised_ce
from mmrl_env.models.encoders import build_encoders

INFERENCE = ("entropy", "fixed")
PROJECTIONS = {False: None, "none": None, True: "gs", "gs": "gs", "batch": "batch"}


def check_kwargs(project: bool | str, inference: str, weights: Sequence[float] | None, modalities: int) -> None:
    """``project``, ``inference`` and ``weights`` as :class:`MLALearner` accepts them."""
    if not isinstance(project, bool | str) or project not in PROJECTIONS:
        raise ValueError(f"project must be one of False, True, 'gs', 'batch', got {project!r}")
    if inference not in INFERENCE:
        raise ValueError(f"inference must be one of {INFERENCE}, got {inference!r}")
    if weights is not None and len(weights) != modalities:
        raise ValueError(f"need one fusion weight per modality ({modalities}), got {list(weights)}")


class SharedHeadNet(nn.Module):
    """Encoders φ_j and one linear head shared by every modality.

    The head needs one feature size. Where the encoders differ (image-text: ResNet50's 2048
    against BERT's 768), each modality gets a linear adapter to the smallest size (our choice:
    the MLA release only covers equal sizes); with equal sizes the adapters are identities and
    add no parameters. The forward returns the features too (the projector's r)."""

    trim_rows = False  # set by the learner for the per-run loop (see ``encode_rows``)

    def __init__(self, dataset: MultimodalDataset, num_classes: int) -> None:
        super().__init__()
        encoders = build_encoders(dataset.modalities)
        self.encoders = nn.ModuleList(encoders)
        dims = [e.out_dim for e in encoders]
        width = min(dims)
        self.adapters = nn.ModuleList(nn.Identity() if d == width else nn.Linear(d, width) for d in dims)
        self.head = nn.Linear(width, num_classes)

    def encode(self, j: int, x: Tensor) -> Tensor:
        """Modality j's features in the head's size."""
        return self.adapters[j](self.encoders[j](x))

    def forward(self, j: int, x: Tensor, mask: Tensor | None = None,
                bn_stats: dict[str, Any] | None = None) -> tuple[Tensor, Tensor]:
        """Modality j's features u and logits head(u); in training, BatchNorm counts the rows where ``mask`` is 1."""
        u = encode_rows(lambda x: self.encode(j, x), x, mask, bn_stats, self.training, self.trim_rows)
        return u, self.head(u)


def project_orthogonal(grad: Tensor, basis: list[Tensor]) -> Tensor:
    """``grad`` minus its components along the orthonormal ``basis`` (Gram–Schmidt step)."""
    for e in basis:
        grad = grad - (grad @ e) * e
    return grad


def gs_projector_step(P: Tensor, r: Tensor, a: float | Tensor) -> Tensor:
    """One update of the released projector with the batch's mean feature ``r`` (1×D):
    k = P·rᵀ, P ← P − k·kᵀ / (a + r·k), then P / ‖P‖_F. Pure, so the learner ``vmap``s it over the runs."""
    k = P @ r.T  # D×1
    P = P - (k @ k.T) / (a + r @ k)
    return P / torch.linalg.matrix_norm(P)  # Frobenius


def entropy_weights(logits: list[Tensor]) -> Tensor:
    """Per-sample fusion weights (M, N): softmax over modalities of −entropy (confident → heavier)."""
    logp = torch.stack([z.float().log_softmax(1) for z in logits])
    entropy = -(logp.exp() * logp).sum(-1)
    return (-entropy).softmax(0)


class MLALearner(StackedLearner):
    """K MLA runs: alternating unimodal steps through a shared head.

    ``project``: head-gradient projection, ``False`` (default), ``True``/``"gs"`` (the released
    algorithm) or ``"batch"`` (ours), see the module docstring. ``inference``: ``entropy``
    (per-sample weights from prediction entropy, MLA's test-time fusion) or ``fixed``
    (``weights``, default equal).
    """

    def __init__(self, dataset: MultimodalDataset, optim: OptimConfig, device: torch.device,
                 generators: Sequence[torch.Generator], project: bool | str = False, inference: str = "entropy",
                 weights: Sequence[float] | None = None) -> None:
        m = dataset.num_modalities
        check_kwargs(project, inference, weights, m)
        self.project, self.inference = PROJECTIONS[project], inference
        super().__init__(lambda: SharedHeadNet(dataset, dataset.num_classes), dataset, optim, device, generators)
        self.weights = torch.tensor(weights if weights is not None else [1.0 / m] * m, dtype=torch.float32,
                                    device=device)
        for j in range(m):
            self.add_group(f"encoder{j}", prefixed(f"encoders.{j}."))
        self.add_group("head", lambda n: n.startswith("head."))
        (self.head_cols,) = column_ranges(self.stack, lambda n: n.startswith("head."))
        self.weight_cols = self.stack.columns["head.weight"]
        self.weight_shape = self.stack.shapes[self.stack.names.index("head.weight")]
        self._reset_state(list(range(len(generators))), generators)
        self._train_fn = self.map_runs(grad_and_value(self._loss, has_aux=True), (0, 0, 0, 0, 0, None, None))

    def _reset_state(self, runs: list[int], generators: Sequence[torch.Generator]) -> None:
        k, d = self.num_runs, self.weight_shape[1]
        if not hasattr(self, "batch_index"):
            self.batch_index = torch.zeros(k, dtype=torch.long)  # batches done in the epoch (host)
            self.count = torch.zeros(k, dtype=torch.long, device=self.device)  # projector steps seen
            self.P = torch.eye(d, device=self.device).repeat(k, 1, 1)
        self.batch_index[runs] = 0
        idx = torch.as_tensor(runs, dtype=torch.long, device=self.device)
        self.count[idx] = 0
        self.P[idx] = torch.eye(d, device=self.device, dtype=self.P.dtype)

    def _loss(self, flat: Tensor, buffers: dict[str, Tensor], x: Tensor, labels: Tensor, mask: Tensor, batch_size: int,
              j: int) -> tuple[Tensor, tuple[Tensor, Tensor, dict[str, Any]]]:
        """Modality j's loss for one run (mapped over the runs), its logits and mean feature."""
        stats: dict[str, Any] = {}
        u, z = self._run_model(flat, buffers, j, x, mask, stats)
        z = z.float()
        r = (u.detach().float() * mask.unsqueeze(1)).sum(0) / mask.sum().clamp(min=1)
        return masked_batch_normalised_ce(z, labels, mask, batch_size), (z.detach(), r, stats)

    def train_step(self, batch: VectorBatch) -> VectorStepOutput:
        """Per modality in turn: gradient, projection, step of encoder j and the head (every active run)."""
        self._set_training(True)
        active = batch.active
        batches = self.iterations_per_epoch or max(1, math.ceil(len(self.dataset.train) / batch.batch_size))
        basis: list[Tensor] = []
        total = torch.zeros(self.num_runs, device=self.device)
        logits = []
        for j, x in enumerate(batch.inputs):
            grads, (loss, (z, r, stats)) = self._train_fn(self.stack.flat, self.stack.buffers, x, batch.labels,
                                                         batch.masks[:, j], batch.batch_size, j)
            if self.project == "gs":
                self._project_gs(grads, r, active, batches)
            elif self.project == "batch":
                basis = self._project_batch(grads, basis)
            self.step_group(f"encoder{j}", grads, active)
            self.step_group("head", grads, active)
            self.update_batchnorm(stats, active)
            total = total + loss.detach()
            logits.append(z)
        self.batch_index += batch.host_active().long()
        return VectorStepOutput(total * active, logits, active)

    @torch.no_grad()
    def _project_gs(self, grads: Tensor, r: Tensor, active: Tensor, batches: int) -> None:
        """Each run's projector update and G_W ← G_W·Pᵀ, skipping a run's very first step."""
        on = active & (self.count > 0)
        a = (0.1 ** (self.batch_index.double() / batches + 1)).to(self.device, self.P.dtype, non_blocking=True)
        updated = vmap(gs_projector_step)(self.P, r.to(self.P.dtype).unsqueeze(1), a)
        self.P = torch.where(on.view(-1, 1, 1), updated, self.P)
        lo, hi = self.weight_cols
        g = grads[:, lo:hi].view(-1, *self.weight_shape)
        projected = (g @ self.P.mT.to(g.dtype)).flatten(1)
        grads[:, lo:hi] = torch.where(on.unsqueeze(1), projected, grads[:, lo:hi])
        self.count += active.long()

    @torch.no_grad()
    def _project_batch(self, grads: Tensor, basis: list[Tensor]) -> list[Tensor]:
        """Each run's head gradient off its earlier modalities' directions; the basis grows by it."""
        lo, hi = self.head_cols
        g = vmap(project_orthogonal)(grads[:, lo:hi], basis) if basis else grads[:, lo:hi].clone()
        grads[:, lo:hi] = g
        return [*basis, g / g.norm(dim=1, keepdim=True).clamp(min=1e-12)]

    def on_epoch_end(self, runs: Tensor) -> None:
        super().on_epoch_end(runs)
        self.batch_index[runs.cpu()] = 0

    @torch.no_grad()
    def predict(self, inputs: list[Tensor], per_run: bool = False) -> VectorPrediction:
        """Every run's unimodal logits and the fused ones by the inference rule (no fusion head)."""
        self._set_training(False)
        fused, uni = self._predict_fn(per_run)(self.stack.flat, self.stack.buffers, inputs)
        return VectorPrediction(fused, uni, None)

    def _forward(self, flat: Tensor, buffers: dict[str, Tensor], inputs: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        params = self.stack.unflatten(flat)
        uni = []
        for j, x in enumerate(inputs):
            with self._autocast():
                _, z = functional_call(self.stack.template, (params, buffers), (j, x))
            uni.append(z.float())
        w = entropy_weights(uni) if self.inference == "entropy" else self.weights[:, None].expand(len(uni), -1)
        return (w[..., None] * torch.stack(uni)).sum(0), uni

    def _extra_state(self) -> dict[str, Any]:
        return {"batch_index": self.batch_index.clone(), "count": self.count.clone(), "P": self.P.clone()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.batch_index.copy_(state["batch_index"])
        self.count.copy_(state["count"])
        self.P = state["P"].to(self.device).clone()
