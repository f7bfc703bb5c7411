"""ResNet18 encoders for spectrograms and frame sequences (from scratch, no weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmrl_env.models.encoders import build_encoder


def test_resnet18_audio_and_frames() -> None:
    audio = build_encoder("resnet18", in_channels=1)
    video = build_encoder("resnet18", in_channels=3)
    assert audio.out_dim == video.out_dim == 512
    assert audio(torch.randn(2, 1, 64, 48)).shape == (2, 512)
    frames = torch.randn(2, 3, 3, 32, 32)
    out = video.eval()(frames)
    assert out.shape == (2, 512)
    per_frame = torch.stack([video(frames[:, t]) for t in range(3)], 1).mean(1)
    assert torch.allclose(out, per_frame, atol=1e-5)  # frames folded into the batch, pooled over time


def test_resnet_weights_only_from_a_local_file(tmp_path: Path) -> None:
    ref = build_encoder("resnet50")
    assert ref.out_dim == 2048
    torch.save({**ref.net.state_dict(), "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)},
               tmp_path / "r50.pth")
    loaded = build_encoder("resnet50", weights=tmp_path / "r50.pth")
    assert torch.equal(loaded.net.layer4[0].conv1.weight, ref.net.layer4[0].conv1.weight)
    one_channel = build_encoder("resnet50", in_channels=1, weights=tmp_path / "r50.pth")
    assert one_channel.net.conv1.in_channels == 1
    with pytest.raises(FileNotFoundError, match="never downloads weights"):
        build_encoder("resnet18", weights=tmp_path / "absent.pth")
    with pytest.raises(ValueError, match="not a torchvision resnet18 state dict"):
        build_encoder("resnet18", weights=tmp_path / "r50.pth")
