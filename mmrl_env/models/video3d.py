"""torchvision's video ResNets (``r3d_18``, ``r2plus1d_18``): a lighter alternative to I3D.

Built without weights (nothing is downloaded); ``weights`` = a local torchvision Kinetics
state dict (e.g. ``r3d_18-b3b3357e.pth``) if the user has one. ``in_channels`` ≠ 3 (flow,
depth) replaces the stem's first convolution, which then stays randomly initialised.
Input: float (B, C, T, H, W); ``out_dim`` = 512.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn
from torchvision.models.video import r2plus1d_18, r3d_18

from mmrl_env.models.base import Encoder
from mmrl_env.models.weights import read_state_dict

ARCHS = {"r3d_18": r3d_18, "r2plus1d_18": r2plus1d_18}


class VideoResNetEncoder(Encoder):
    """A torchvision video ResNet without its classifier."""

    def __init__(self, arch: str = "r3d_18", in_channels: int = 3, weights: str | Path | None = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown video ResNet {arch!r}; choose one of {', '.join(ARCHS)}")
        net = ARCHS[arch](weights=None)
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"{arch} weights {path} not found. mmrl never downloads weights: put a "
                                        "torchvision Kinetics state dict there, or pass weights=None")
            state = read_state_dict(path, f"{arch} weights")
            net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
        if in_channels != 3:
            old = net.stem[0]
            net.stem[0] = nn.Conv3d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
