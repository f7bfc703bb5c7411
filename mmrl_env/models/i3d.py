"""I3D: Inception-V1 inflated to 3D (Carreira & Zisserman 2017), the NVGesture encoder.

Layer names follow the widely used PyTorch port's checkpoints ``rgb_imagenet.pt`` /
``flow_imagenet.pt`` (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``,
``logits.conv3d.*``...), so those files load directly when the user has them (local path
only). Convolutions and pools use TensorFlow's "SAME" padding, as the weights were trained
with. The classifier is dropped; features are average-pooled over (T, H, W), ``out_dim`` =
1024. Input: float (B, C, T, H, W); C = 3 (RGB), 2 (flow) or 1 (depth).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmrl_env.models.base import Encoder
from mmrl_env.models.weights import read_state_dict

Triple = tuple[int, int, int]
# name -> (input channels, output channels of branches b0, b1a, b1b, b2a, b2b, b3b)
MIXED: dict[str, tuple[int, tuple[int, ...]]] = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)), "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)), "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)), "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)), "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
STEM = "Conv3d_1a_7x7.conv3d.weight"


def _same_padding(shape: Sequence[int], kernel: Triple, stride: Triple) -> list[int]:
    """``F.pad`` amounts (last dim first) that give TF 'SAME' output size ceil(n / stride)."""
    pads: list[int] = []
    for n, k, s in zip(reversed(shape), reversed(kernel), reversed(stride), strict=True):
        total = max(k - (n % s or s), 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """SAME-padded Conv3d → BatchNorm → ReLU (``conv3d`` / ``bn`` as in the checkpoints)."""

    def __init__(self, cin: int, cout: int, kernel: Triple = (1, 1, 1), stride: Triple = (1, 1, 1)) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, _same_padding(x.shape[-3:], self.kernel, self.stride))
        return F.relu(self.bn(self.conv3d(x)))


class MaxPool3dSame(nn.Module):
    """Max pool with SAME padding (zeros are safe: inputs follow a ReLU)."""

    def __init__(self, kernel: Triple, stride: Triple) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(F.pad(x, _same_padding(x.shape[-3:], self.kernel, self.stride)), self.kernel, self.stride)


class Inception(nn.Module):
    """Four parallel branches (1×1; 1×1→3×3; 1×1→3×3; pool→1×1), concatenated on channels."""

    def __init__(self, cin: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3 = widths
        self.out_channels = w0 + w1b + w2b + w3
        self.b0 = Unit3D(cin, w0)
        self.b1a, self.b1b = Unit3D(cin, w1a), Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, w2a), Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a, self.b3b = MaxPool3dSame((3, 3, 3), (1, 1, 1)), Unit3D(cin, w3)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


def inception_i3d(in_channels: int = 3) -> nn.Sequential:
    """The I3D trunk up to ``Mixed_5c`` (1024 channels), module names as in the checkpoints."""
    layers: OrderedDict[str, nn.Module] = OrderedDict([
        ("Conv3d_1a_7x7", Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))),
        ("MaxPool3d_2a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
        ("Conv3d_2b_1x1", Unit3D(64, 64)),
        ("Conv3d_2c_3x3", Unit3D(64, 192, (3, 3, 3))),
        ("MaxPool3d_3a_3x3", MaxPool3dSame((1, 3, 3), (1, 2, 2))),
    ])
    pools = {"Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
             "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2))}
    for name, (cin, widths) in MIXED.items():
        if name in pools:
            pool, kernel, stride = pools[name]
            layers[pool] = MaxPool3dSame(kernel, stride)
        layers[name] = Inception(cin, widths)
    return nn.Sequential(layers)


class I3DEncoder(Encoder):
    """I3D features for one modality; ``weights`` = a local ``rgb_imagenet.pt``/``flow_imagenet.pt``.

    A checkpoint whose stem has another channel count than ``in_channels`` (e.g. RGB
    weights for depth) has its first filters summed over input channels and spread evenly
    — the response to a gray input replicated to every channel is unchanged.
    """

    def __init__(self, in_channels: int = 3, weights: str | Path | None = None) -> None:
        super().__init__()
        self.net = inception_i3d(in_channels)
        self.out_dim = 1024
        if weights is not None:
            load_i3d_weights(self.net, Path(weights).expanduser(), in_channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f"i3d expects (B, C, T, H, W), got {tuple(x.shape)}")
        return self.net(x).mean(dim=(2, 3, 4))


def load_i3d_weights(net: nn.Module, path: Path, in_channels: int) -> None:
    """Load an I3D state dict in the checkpoints' key layout (``logits.*`` is ignored)."""
    if not path.is_file():
        raise FileNotFoundError(f"I3D weights {path} not found. mmrl never downloads weights: put rgb_imagenet.pt / "
                                "flow_imagenet.pt there, or pass weights=None to train from scratch")
    state = read_state_dict(path, "I3D weights")
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    stem = state.get(STEM)
    if stem is not None and stem.dim() == 5 and stem.shape[1] != in_channels:
        state[STEM] = (stem.sum(1, keepdim=True) / in_channels).expand(-1, in_channels, -1, -1, -1).clone()
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"{path} is not an I3D (rgb_imagenet.pt layout) state dict: {str(err)[:300]}") from err
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # absent from old checkpoints
    if missing or unexpected:
        raise ValueError(f"{path} is not an I3D (rgb_imagenet.pt layout) state dict (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
