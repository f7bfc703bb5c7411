"""The multimodal network shared by learners: encoders, unimodal heads, a fusion head."""

from __future__ import annotations

from torch import Tensor, nn

from mmrl_env.data.base import ModalitySpec
from mmrl_env.models.encoders import build_encoders
from mmrl_env.models.fusion import build_fusion


class MultimodalNet(nn.Module):
    """φ_j -> u_j; head_j(u_j) = z_j (unimodal logits); fusion(u_1..u_M) = z_multi."""

    def __init__(self, modalities: tuple[ModalitySpec, ...], num_classes: int, fusion: str = "concat") -> None:
        super().__init__()
        encoders = build_encoders(modalities)
        self.encoders = nn.ModuleList(encoders)
        self.dims = [e.out_dim for e in encoders]  # each modality's feature size u_j
        self.heads = nn.ModuleList(nn.Linear(d, num_classes) for d in self.dims)
        self.fusion = build_fusion(fusion, self.dims, num_classes)

    @property
    def num_modalities(self) -> int:
        return len(self.encoders)

    def encode(self, j: int, x: Tensor) -> Tensor:
        return self.encoders[j](x)
