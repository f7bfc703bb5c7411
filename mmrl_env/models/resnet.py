"""ResNet encoders for spectrograms, frame sequences and images (torchvision architectures).

One class covers every use: ``in_channels`` replaces the stem (1 for a spectrogram, 3 for
RGB frames), and a 5-D input (B, T, C, H, W) is folded into the batch, encoded frame by
frame and mean-pooled over time, which equals the reference's spatio-temporal average pool
over the last feature map. The audio-video reference trains ResNet18 from scratch
(``weights=None``, the default); image-text models start from ImageNet weights, which are
read from a local file only (nothing is ever downloaded).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn
from torchvision.models import resnet18, resnet50

from mmrl_env.models.base import Encoder
from mmrl_env.models.weights import read_state_dict

ARCHS = {"resnet18": resnet18, "resnet50": resnet50}


class ResNetEncoder(Encoder):
    """A torchvision ResNet without its classifier; ``out_dim`` = 512 (18) or 2048 (50).

    ``weights``: path of a local torchvision state dict (e.g. ``resnet50-11ad3fa6.pth`` from
    ``~/.cache/torch/hub/checkpoints``); its ``fc`` is dropped, and a stem of another width
    than 3 channels stays randomly initialised.
    """

    def __init__(self, arch: str = "resnet18", in_channels: int = 3, weights: str | Path | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown ResNet {arch!r}; choose one of {', '.join(ARCHS)}")
        net = ARCHS[arch](weights=None)
        if weights is not None:
            _load_local(net, Path(weights).expanduser(), arch, keep_stem=in_channels == 3)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 5:
            b, t = x.shape[:2]
            return self.net(x.flatten(0, 1)).unflatten(0, (b, t)).mean(dim=1)
        return self.net(x)


def _load_local(net: nn.Module, path: Path, arch: str, keep_stem: bool) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{arch} weights {path} not found. mmrl never downloads weights: put a torchvision "
                                f"ImageNet state dict there, or pass weights=None to train from scratch")
    state = read_state_dict(path, f"{arch} weights")
    state = {k: v for k, v in state.items() if not k.startswith("fc.") and (keep_stem or not k.startswith("conv1."))}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{path} is not a torchvision {arch} state dict: {str(err)[:300]}") from err
    if unexpected or any(not k.startswith(("fc.", "conv1.")) for k in missing):
        raise ValueError(f"{path} is not a torchvision {arch} state dict (unexpected {unexpected[:3]}, "
                         f"missing {missing[:3]})")

