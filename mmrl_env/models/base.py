"""The encoder contract: what the networks need of a modality's encoder φ_j."""

from __future__ import annotations

from torch import nn


class Encoder(nn.Module):
    """A modality's encoder φ_j: a batch of inputs -> (N, ``out_dim``) features.

    A subclass sets ``out_dim`` in its ``__init__``: the unimodal heads and the fusion layer are
    sized from it (``nn.ModuleList`` types its items as plain modules, so the networks read it
    from the built encoders, see :func:`~mmrl_env.models.encoders.build_encoders`)."""

    out_dim: int
