"""``mla``: multimodal learning by alternating unimodal adaptation (MLA).

Modalities take turns: each batch runs one optimizer step per modality, encoder j and the
ONE shared head trained on modality j's own n_j samples. Alternating removes the joint
loss through which the strong modality starves the weak one; sharing the head keeps the
modalities in one decision space. Optionally the head's gradient of modality j is
projected onto the orthogonal complement of the earlier modalities' head gradients in the
same round, so learning modality j does not undo what the head just learned for them
(the MLA paper's idea; the public release never applies it, here it does when enabled).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmrl_env.learners.base import Batch, Learner, OptimConfig, Prediction, StepOutput, budget_ce
from mmrl_env.models.encoders import build_encoder

INFERENCE = ("entropy", "fixed")


class SharedHeadNet(nn.Module):
    """Encoders φ_j and one linear head shared by every modality (needs equal feature dims)."""

    def __init__(self, dataset, num_classes: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(build_encoder(m.encoder, **m.encoder_kwargs) for m in dataset.modalities)
        dims = {int(e.out_dim) for e in self.encoders}
        if len(dims) != 1:
            raise ValueError(f"mla's shared head needs equal encoder feature dims, got {sorted(dims)}")
        self.head = nn.Linear(dims.pop(), num_classes)

    def forward(self, j: int, x: Tensor) -> Tensor:
        return self.head(self.encoders[j](x))


def project_orthogonal(grad: Tensor, basis: list[Tensor]) -> Tensor:
    """``grad`` minus its components along the orthonormal ``basis`` (Gram–Schmidt step)."""
    for e in basis:
        grad = grad - (grad @ e) * e
    return grad


def entropy_weights(logits: list[Tensor]) -> Tensor:
    """Per-sample fusion weights (M, N): softmax over modalities of −entropy (confident → heavier)."""
    logp = torch.stack([z.float().log_softmax(1) for z in logits])
    entropy = -(logp.exp() * logp).sum(-1)
    return (-entropy).softmax(0)


class MLALearner(Learner):
    """Alternating unimodal steps through a shared head.

    ``project``: orthogonalise the head gradient against earlier modalities' in each round.
    ``inference``: ``entropy`` (per-sample weights from prediction entropy, MLA's test-time
    fusion) or ``fixed`` (``weights``, default equal).
    """

    def __init__(self, dataset, optim: OptimConfig, device, generator, project: bool = False,
                 inference: str = "entropy", weights: Sequence[float] | None = None) -> None:
        if inference not in INFERENCE:
            raise ValueError(f"inference must be one of {INFERENCE}, got {inference!r}")
        m = dataset.num_modalities
        if weights is not None and len(weights) != m:
            raise ValueError(f"need one fusion weight per modality ({m}), got {list(weights)}")
        self.project, self.inference = project, inference
        self.weights = torch.tensor(weights if weights is not None else [1.0 / m] * m, dtype=torch.float32)
        super().__init__(dataset, optim, device, generator)
        self.weights = self.weights.to(device)

    def build_model(self) -> nn.Module:
        return SharedHeadNet(self.dataset, self.num_classes)

    def train_step(self, batch: Batch) -> StepOutput:
        self.set_training(True)
        head = list(self.model.head.parameters())
        basis: list[Tensor] = []
        total = torch.zeros((), device=self.device)
        logits = []
        for j, (x, y) in enumerate(zip(batch.inputs, batch.labels, strict=True)):
            with self.autocast():
                z = self.model(j, x)
                loss = budget_ce(z.float(), y, batch.budget)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.project:
                basis = self._project_head(head, basis)
            self.optimizer.step()
            total = total + loss.detach()
            logits.append(z.detach().float())
        return StepOutput(total, logits)

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
