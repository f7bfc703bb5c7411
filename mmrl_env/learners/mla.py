"""``mla``: multimodal learning by alternating unimodal adaptation (MLA).

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
  so it never projects (README "The inner learners"); here it does when enabled.
- ``"batch"``: our earlier variant: per batch, modality j's whole head gradient minus its
  components along the earlier modalities' head gradients of the same batch (Gram–Schmidt);
  no state across batches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmrl_env.learners.base import Batch, Learner, OptimConfig, Prediction, StepOutput, batch_normalised_ce
from mmrl_env.models.encoders import build_encoder

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
    add no parameters."""

    def __init__(self, dataset, num_classes: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(build_encoder(m.encoder, **m.encoder_kwargs) for m in dataset.modalities)
        dims = [int(e.out_dim) for e in self.encoders]
        width = min(dims)
        self.adapters = nn.ModuleList(nn.Identity() if d == width else nn.Linear(d, width) for d in dims)
        self.head = nn.Linear(width, num_classes)

    def encode(self, j: int, x: Tensor) -> Tensor:
        """Modality j's features in the head's size."""
        return self.adapters[j](self.encoders[j](x))

    def forward(self, j: int, x: Tensor) -> Tensor:
        return self.head(self.encode(j, x))


def project_orthogonal(grad: Tensor, basis: list[Tensor]) -> Tensor:
    """``grad`` minus its components along the orthonormal ``basis`` (Gram–Schmidt step)."""
    for e in basis:
        grad = grad - (grad @ e) * e
    return grad


def gs_projector_step(P: Tensor, r: Tensor, a: float | Tensor) -> Tensor:
    """One update of the released projector with the batch's mean feature ``r`` (1×D):
    k = P·rᵀ, P ← P − k·kᵀ / (a + r·k), then P / ‖P‖_F. Pure, so the K-run engine ``vmap``s it."""
    k = P @ r.T  # D×1
    P = P - (k @ k.T) / (a + r @ k)
    return P / torch.linalg.matrix_norm(P)  # Frobenius


class GSProjector:
    """The released MLA projector (module docstring): P persists across steps, epochs and modalities."""

    def __init__(self, dim: int, device: torch.device) -> None:
        self.P = torch.eye(dim, device=device)
        self.count = 0  # optimizer steps seen (the release's exp_count): the first one is left as is

    def __call__(self, weight: nn.Parameter, feats: Tensor, batch_index: int, batches: int) -> None:
        """Update P with the batch's mean feature and project ``weight.grad`` (K×D) through it."""
        if self.count > 0 and weight.grad is not None:
            a = 0.1 ** (batch_index / batches + 1)
            r = feats.detach().float().mean(0, keepdim=True).to(self.P.dtype)  # 1×D
            self.P = gs_projector_step(self.P, r, a)
            weight.grad = weight.grad @ self.P.T.to(weight.grad.dtype)
        self.count += 1


def entropy_weights(logits: list[Tensor]) -> Tensor:
    """Per-sample fusion weights (M, N): softmax over modalities of −entropy (confident → heavier)."""
    logp = torch.stack([z.float().log_softmax(1) for z in logits])
    entropy = -(logp.exp() * logp).sum(-1)
    return (-entropy).softmax(0)


class MLALearner(Learner):
    """Alternating unimodal steps through a shared head.

    ``project``: head-gradient projection, ``False`` (default), ``True``/``"gs"`` (the released
    algorithm) or ``"batch"`` (ours), see the module docstring. ``inference``: ``entropy``
    (per-sample weights from prediction entropy, MLA's test-time fusion) or ``fixed``
    (``weights``, default equal).
    """

    def __init__(self, dataset, optim: OptimConfig, device, generator, project: bool | str = False,
                 inference: str = "entropy", weights: Sequence[float] | None = None) -> None:
        check_kwargs(project, inference, weights, dataset.num_modalities)
        m = dataset.num_modalities
        self.project, self.inference = PROJECTIONS[project], inference
        self.weights = torch.tensor(weights if weights is not None else [1.0 / m] * m, dtype=torch.float32)
        super().__init__(dataset, optim, device, generator)
        self.weights = self.weights.to(device)
        self.projector = GSProjector(self.model.head.in_features, device) if self.project == "gs" else None
        self.batch_index = 0  # batches done in this epoch (the projector's a)

    def build_model(self) -> nn.Module:
        return SharedHeadNet(self.dataset, self.num_classes)

    def train_step(self, batch: Batch) -> StepOutput:
        self.set_training(True)
        head = list(self.model.head.parameters())
        basis: list[Tensor] = []
        total = torch.zeros((), device=self.device)
        logits = []
        batches = self.iterations_per_epoch or max(1, math.ceil(len(self.dataset.train) / batch.batch_size))
        for j, (x, y) in enumerate(zip(batch.inputs, batch.labels, strict=True)):
            with self.autocast():
                u = self.model.encode(j, x)
                z = self.model.head(u)
                loss = batch_normalised_ce(z.float(), y, batch.batch_size)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.project == "gs":
                self.projector(self.model.head.weight, u, self.batch_index, batches)
            elif self.project == "batch":
                basis = self._project_head(head, basis)
            self.optimizer.step()
            total = total + loss.detach()
            logits.append(z.detach().float())
        self.batch_index += 1
        return StepOutput(total, logits)

    def on_epoch_end(self, epoch: int) -> None:
        super().on_epoch_end(epoch)
        self.batch_index = 0

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "batch_index": self.batch_index}
        if self.projector is not None:
            state["projector"] = {"P": self.projector.P.clone(), "count": self.projector.count}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.batch_index = int(state.get("batch_index", 0))
        if self.projector is not None:
            self.projector.P = state["projector"]["P"].to(self.device)
            self.projector.count = int(state["projector"]["count"])

    @staticmethod
    def _project_head(head: list[nn.Parameter], basis: list[Tensor]) -> list[Tensor]:
        """Project the head's gradient off ``basis``; return the basis extended by its direction."""
        g = torch.cat([p.grad.flatten() for p in head])
        g = project_orthogonal(g, basis)
        for p, part in zip(head, g.split([p.numel() for p in head]), strict=True):
            p.grad = part.view_as(p).clone()
        return [*basis, g / g.norm().clamp(min=1e-12)]

    @torch.no_grad()
    def predict(self, inputs: list[Tensor]) -> Prediction:
        self.set_training(False)
        with self.autocast():
            uni = [self.model(j, x).float() for j, x in enumerate(inputs)]
        w = entropy_weights(uni) if self.inference == "entropy" else self.weights[:, None].expand(len(uni), -1)
        return Prediction((w[..., None] * torch.stack(uni)).sum(0), uni)
