"""AUG's network: per-modality encoders, configurable classifiers, one shared Layer2.

Classifier t of modality r is Layer1_t^r (D_r×H) → ReLU → Layer2 (H×K). Layer2 is shared
by every classifier of every modality (the paper's shared head couples the modalities);
a modality's classifiers share its encoder. Classifiers are added during training
(adaptive classifier assignment); this network holds the first one of each modality and the
``boosting`` learner pre-allocates the later ones (``mmrl_env.learners.boosting``).
"""

from __future__ import annotations

from torch import Tensor, nn

from mmrl_env.data.base import ModalitySpec
from mmrl_env.models.encoders import build_encoders


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
    """Encoders φ_r, one Layer1 per modality (``layer1[r][0]``), the shared Layer2 ``head``."""

    def __init__(self, modalities: tuple[ModalitySpec, ...], num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        encoders = build_encoders(modalities)
        self.encoders = nn.ModuleList(encoders)
        self.dims = [e.out_dim for e in encoders]
        self.hidden = hidden
        self.layer1 = nn.ModuleList(nn.ModuleList([nn.Linear(d, hidden)]) for d in self.dims)
        self.head = nn.Linear(hidden, num_classes)
