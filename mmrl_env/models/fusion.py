"""Fusion heads: per-modality features u_1..u_M -> fused logits z_multi."""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn


class ConcatFusion(nn.Module):
    """Linear classifier on the concatenated features (the field's default baseline)."""

    def __init__(self, dims: list[int], num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(sum(dims), num_classes)

    def forward(self, feats: list[Tensor]) -> Tensor:
        return self.fc(torch.cat(feats, dim=1))


class SumFusion(nn.Module):
    """Sum of one linear classifier per modality."""

    def __init__(self, dims: list[int], num_classes: int) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(d, num_classes) for d in dims)

    @property
    def linears(self) -> list[nn.Linear]:
        """The per-modality classifiers, typed (``nn.ModuleList`` types its items as plain modules)."""
        return [cast(nn.Linear, fc) for fc in self.fcs]

    def forward(self, feats: list[Tensor]) -> Tensor:
        return torch.stack([fc(u) for fc, u in zip(self.fcs, feats, strict=True)]).sum(0)


class FiLMFusion(nn.Module):
    """FiLM: the last modality produces (γ, β) that modulate the mean of the others."""

    def __init__(self, dims: list[int], num_classes: int) -> None:
        super().__init__()
        if len(set(dims)) != 1:
            raise ValueError(f"film fusion needs equal feature dims, got {dims}")
        self.film = nn.Linear(dims[-1], 2 * dims[0])
        self.fc = nn.Linear(dims[0], num_classes)

    def forward(self, feats: list[Tensor]) -> Tensor:
        gamma, beta = self.film(feats[-1]).chunk(2, dim=1)
        return self.fc(gamma * torch.stack(feats[:-1]).mean(0) + beta)


class GatedFusion(nn.Module):
    """Gated: a sigmoid gate from the last modality weighs the mean of the others."""

    def __init__(self, dims: list[int], num_classes: int) -> None:
        super().__init__()
        if len(set(dims)) != 1:
            raise ValueError(f"gated fusion needs equal feature dims, got {dims}")
        self.gate = nn.Linear(dims[-1], dims[0])
        self.fc = nn.Linear(dims[0], num_classes)

    def forward(self, feats: list[Tensor]) -> Tensor:
        g = torch.sigmoid(self.gate(feats[-1]))
        return self.fc(g * torch.stack(feats[:-1]).mean(0) + (1 - g) * feats[-1])


FUSIONS = {"concat": ConcatFusion, "sum": SumFusion, "film": FiLMFusion, "gated": GatedFusion}


def build_fusion(name: str, dims: list[int], num_classes: int) -> nn.Module:
    if name not in FUSIONS:
        raise KeyError(f"unknown fusion {name!r}; known fusions: {', '.join(FUSIONS)}")
    return FUSIONS[name](dims, num_classes)
