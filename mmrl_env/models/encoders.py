"""Per-modality encoders φ_j, built by name from a dataset's ``ModalitySpec``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from mmrl_env.data.base import ModalitySpec
from mmrl_env.models.base import Encoder
from mmrl_env.models.i3d import I3DEncoder
from mmrl_env.models.resnet import ResNetEncoder
from mmrl_env.models.text import BertEncoder, find_bert
from mmrl_env.models.video3d import VideoResNetEncoder


class MLPEncoder(Encoder):
    """Two-layer MLP for feature-vector modalities (the Synthetic default)."""

    def __init__(self, in_dim: int, hidden: int = 128, out_dim: int = 64) -> None:
        super().__init__()
        self.out_dim = out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SmallCNNEncoder(Encoder):
    """A three-block CNN for small spectrogram-like maps or frames (Synthetic raw form)."""

    MIN_SIZE = 8  # three 2x2 max-pools: a smaller map has nothing left to pool

    def __init__(self, in_channels: int, out_dim: int = 64, width: int = 32) -> None:
        super().__init__()
        self.out_dim = out_dim

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(block(in_channels, width), block(width, width), block(width, out_dim))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.features(x)).flatten(1)


ENCODERS: dict[str, Callable[..., Encoder]] = {"mlp": MLPEncoder, "cnn": SmallCNNEncoder,
                                                 "resnet18": partial(ResNetEncoder, "resnet18"),
                                                 "resnet50": partial(ResNetEncoder, "resnet50"),
                                                 "bert": BertEncoder, "i3d": I3DEncoder,
                                                 "r3d_18": partial(VideoResNetEncoder, "r3d_18"),
                                                 "r2plus1d_18": partial(VideoResNetEncoder, "r2plus1d_18")}


PROBED_NUMEL = 1 << 18  # samples up to this many values are run through their encoder at construction
UNPROBED = ("bert", "i3d")  # heavy to build; they read their own pretrained weights


def unknown_encoder(name: object) -> ValueError:
    return ValueError(f"unknown encoder {name!r}; known encoders: {', '.join(ENCODERS)}")


def build_encoder(name: str, **kwargs: object) -> Encoder:
    """Encoder ``name`` (see ``ENCODERS``)."""
    if name not in ENCODERS:
        raise unknown_encoder(name)
    return ENCODERS[name](**kwargs)


def build_encoders(modalities: Iterable[ModalitySpec]) -> list[Encoder]:
    """Each modality's encoder, in order (the networks read their ``out_dim`` before wrapping
    them in an ``nn.ModuleList``, whose items are typed as plain modules)."""
    return [build_encoder(m.encoder, **m.encoder_kwargs) for m in modalities]


def check_encoder_input(modality: str, name: str, kwargs: dict[str, object], sample: Tensor) -> None:
    """Fail at construction, naming the modality and sizes, when encoder ``name`` cannot take
    ``sample`` (one sample with its batch axis): a CNN map smaller than its pools need, or any
    shape the encoder refuses (checked by one forward pass in a forked RNG, for samples up to
    ``PROBED_NUMEL`` values built without weight files; larger ones, e.g. video clips, ``UNPROBED``
    encoders and local pretrained weights are left to the first step)."""
    shape = tuple(sample.shape[1:])
    where = f"modality {modality!r}: encoder {name!r}"
    cls = ENCODERS.get(name)
    if cls is SmallCNNEncoder and (len(shape) != 3 or min(shape[1:]) < SmallCNNEncoder.MIN_SIZE):
        raise ValueError(f"{where} needs (channels, height, width) samples of at least "
                         f"{SmallCNNEncoder.MIN_SIZE}x{SmallCNNEncoder.MIN_SIZE} (three 2x2 max-pools); the data has "
                         f"samples of shape {shape}: use 'mlp' (flatten them) or larger inputs")
    if sample.numel() > PROBED_NUMEL or name in UNPROBED or kwargs.get("weights") is not None:
        return
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            encoder = build_encoder(name, **kwargs).eval()
            dtype = next((p.dtype for p in encoder.parameters()), torch.get_default_dtype())
            encoder(sample.cpu().to(dtype) if sample.is_floating_point() else sample.cpu())
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        text = " ".join(str(err).split())[:300]
        raise ValueError(f"{where} with {kwargs} cannot take this data's samples of shape {shape} ({text}); "
                         "set the encoder's input size to the data (e.g. in_dim / in_channels in meta.json)") from err


def check_encoder(name: str, **kwargs: object) -> None:
    """Fail now, with the fix, for an encoder that could not be built at the first reset:
    an unknown name, or local pretrained weights that are not there (BERT)."""
    if name not in ENCODERS:
        raise unknown_encoder(name)
    if name == "bert" and kwargs.get("pretrained", True):
        path = kwargs.get("path")
        if path is not None and not isinstance(path, (str, Path)):
            raise TypeError(f"encoder 'bert': path must be a local model folder (a string), got {path!r}")
        find_bert(path)
