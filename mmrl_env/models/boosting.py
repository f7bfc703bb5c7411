"""AUG's network: per-modality encoders, configurable classifiers, one shared Layer2.

Classifier t of modality r is Layer1_t^r (D_r×H) → ReLU → Layer2 (H×K). Layer2 is shared
by every classifier of every modality (the paper's shared head couples the modalities);
a modality's classifiers share its encoder. Classifiers are added during training
(adaptive classifier assignment), so Layer1s live in growable ``ModuleList``s.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmrl_env.data.base import ModalitySpec
from mmrl_env.models.encoders import build_encoder


class OmegaNet(nn.Module):
    """ω: a 3-layer ReLU MLP from the M modality scores to M classifier weights."""

    def __init__(self, num_modalities: int, hidden: int = 32) -> None:
        super().__init__()
        m = num_modalities
        self.net = nn.Sequential(nn.Linear(m, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, m))

    def forward(self, scores: Tensor) -> Tensor:
        return self.net(scores)


class BoostingNet(nn.Module):
    """Encoders φ_r, growable Layer1 lists, shared Layer2 ``head``."""

    def __init__(self, modalities: tuple[ModalitySpec, ...], num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(build_encoder(m.encoder, **m.encoder_kwargs) for m in modalities)
        self.dims = [int(e.out_dim) for e in self.encoders]
        self.hidden = hidden
        self.layer1 = nn.ModuleList(nn.ModuleList([nn.Linear(d, hidden)]) for d in self.dims)
        self.head = nn.Linear(hidden, num_classes)

    @property
    def counts(self) -> list[int]:
        return [len(layers) for layers in self.layer1]

    def add_classifier(self, r: int) -> nn.Linear:
        """Append a fresh Layer1 to modality r (on the model's device); returns it."""
        ref = self.head.weight
        layer = nn.Linear(self.dims[r], self.hidden).to(device=ref.device, dtype=ref.dtype)
        self.layer1[r].append(layer)
        return layer

    def classifier_logits(self, r: int, u: Tensor) -> Tensor:
        """Logits of every classifier of modality r on features u, stacked: (n_r, N, K)."""
        return torch.stack([self.head(torch.relu(layer(u))) for layer in self.layer1[r]])
