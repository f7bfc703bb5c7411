"""``joint``: plain joint training with unimodal auxiliary heads (BSS eq. 5 and eq. 12)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmrl_env.learners.base import Batch, Learner, OptimConfig, Prediction, StepOutput, batch_normalised_ce
from mmrl_env.models.multimodal import MultimodalNet


def joint_objective(uni: Tensor, fused: Tensor | None, alpha: float) -> Tensor:
    """α·Σ_j CE_j + (1−α)·CE_multi (no fusion term when no sample is common to all modalities).

    A pure function so that the K-run engine (``mmrl_env.engine``) combines its masked terms
    with the same formula, in the same order."""
    loss = alpha * uni
    return loss if fused is None else loss + (1 - alpha) * fused


def check_alpha(alpha: float) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")


class JointLearner(Learner):
    """Loss (1−α)·CE(z_multi) + α·Σ_j CE(z_j); inference z_multi + Σ_j z_j.

    ``alpha`` weighs the unimodal heads (BSS paper eq. 5, α = 0.2); ``fusion`` picks the fusion head.
    """

    def __init__(self, dataset, optim: OptimConfig, device, generator, alpha: float = 0.2,
                 fusion: str = "concat") -> None:
        check_alpha(alpha)
        self.alpha = alpha
        self.fusion_name = fusion
        super().__init__(dataset, optim, device, generator)

    def build_model(self) -> nn.Module:
        return MultimodalNet(self.dataset.modalities, self.num_classes, self.fusion_name)

    def train_step(self, batch: Batch) -> StepOutput:
        model = self.model
        self.set_training(True)
        with self.autocast():
            feats = [model.encode(j, x) for j, x in enumerate(batch.inputs)]
            logits = [head(u) for head, u in zip(model.heads, feats, strict=True)]
            uni = sum(batch_normalised_ce(z.float(), y, batch.batch_size)
                      for z, y in zip(logits, batch.labels, strict=True))
            fused = None
            if batch.n_common > 0:
                z_multi = model.fusion([u[: batch.n_common] for u in feats])
                fused = nn.functional.cross_entropy(z_multi.float(), batch.labels[0][: batch.n_common])
            loss = joint_objective(uni, fused, self.alpha)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.modulate_gradients(batch, logits)
        self.optimizer.step()
        return StepOutput(loss.detach(), [z.detach().float() for z in logits])

    def modulate_gradients(self, batch: Batch, logits: list[Tensor]) -> None:
        """Hook between backward and the optimizer step (no-op here; OGM-GE rescales encoders)."""

    @torch.no_grad()
    def predict(self, inputs: list[Tensor]) -> Prediction:
        model = self.model
        self.set_training(False)
        with self.autocast():
            feats = [model.encode(j, x) for j, x in enumerate(inputs)]
            uni = [head(u).float() for head, u in zip(model.heads, feats, strict=True)]
            multi = model.fusion(feats).float()
        return Prediction(multi + torch.stack(uni).sum(0), uni, multi)
