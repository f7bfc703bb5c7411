"""Per-modality encoders φ_j, built by name from a dataset's ``ModalitySpec``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn

from mmrl_env.models.i3d import I3DEncoder
from mmrl_env.models.resnet import ResNetEncoder
from mmrl_env.models.text import BertEncoder, find_bert
from mmrl_env.models.video3d import VideoResNetEncoder


class MLPEncoder(nn.Module):
    """Two-layer MLP for feature-vector modalities (the Synthetic default)."""

    def __init__(self, in_dim: int, hidden: int = 128, out_dim: int = 64) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SmallCNNEncoder(nn.Module):
    """A three-block CNN for small spectrogram-like maps or frames (Synthetic raw form)."""

    def __init__(self, in_channels: int, out_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        self.out_dim = out_dim

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(in_channels, width), block(width, width), block(width, out_dim))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)).flatten(1)


ENCODERS: dict[str, Callable[..., nn.Module]] = {"mlp": MLPEncoder, "cnn": SmallCNNEncoder,
                                                 "resnet18": partial(ResNetEncoder, "resnet18"),
                                                 "resnet50": partial(ResNetEncoder, "resnet50"),
                                                 "bert": BertEncoder, "i3d": I3DEncoder,
                                                 "r3d_18": partial(VideoResNetEncoder, "r3d_18"),
                                                 "r2plus1d_18": partial(VideoResNetEncoder, "r2plus1d_18")}


def build_encoder(name: str, **kwargs: object) -> nn.Module:
    """Encoder ``name`` (see ``ENCODERS``); it must expose ``out_dim``."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known encoders: {', '.join(ENCODERS)}")
    return ENCODERS[name](**kwargs)


def check_encoder(name: str, **kwargs: object) -> None:
    """Fail now, with the fix, for an encoder that could not be built at the first reset:
    an unknown name, or local pretrained weights that are not there (BERT)."""
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known encoders: {', '.join(ENCODERS)}")
    if name == "bert" and kwargs.get("pretrained", True):
        find_bert(kwargs.get("path"))  # type: ignore[arg-type]
