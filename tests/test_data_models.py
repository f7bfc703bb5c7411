"""Encoders of the image-text and gesture datasets: BERT, I3D (+ its checkpoint layout), video ResNets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmrl_env.data.fixtures_image_text import TINY_BERT
from mmrl_env.models.encoders import ENCODERS, build_encoder, check_encoder
from mmrl_env.models.i3d import STEM
from mmrl_env.models.text import BertWeightsNotFoundError, find_bert


def tokens(batch: int = 3, length: int = 10) -> torch.Tensor:
    ids = torch.randint(5, TINY_BERT["vocab_size"], (batch, length))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return torch.stack([ids, mask], 1)


def test_new_encoders_are_registered() -> None:
    assert {"bert", "i3d", "r3d_18", "r2plus1d_18", "resnet50"} <= set(ENCODERS)


@pytest.mark.parametrize("channels", [3, 2, 1])
def test_i3d_forward_shape_per_modality(channels: int) -> None:
    enc = build_encoder("i3d", in_channels=channels)
    assert enc.out_dim == 1024
    assert enc(torch.randn(2, channels, 8, 32, 32)).shape == (2, 1024)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        enc(torch.randn(2, channels, 32, 32))


def _checkpoint(tmp_path: Path, channels: int) -> tuple[Path, dict[str, torch.Tensor]]:
    """A state dict in the rgb_imagenet.pt / flow_imagenet.pt layout: no num_batches_tracked, with logits."""
    ref = build_encoder("i3d", in_channels=channels)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.1, 0.1)
    state = {k: v for k, v in ref.net.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["logits.conv3d.weight"] = torch.zeros(400, 1024, 1, 1, 1)
    state["logits.conv3d.bias"] = torch.zeros(400)
    path = tmp_path / f"i3d_{channels}.pt"
    torch.save(state, path)
    return path, state


def test_i3d_loads_the_public_checkpoint_key_layout(tmp_path: Path) -> None:
    path, state = _checkpoint(tmp_path, 3)
    for key in ("Conv3d_1a_7x7.conv3d.weight", "Conv3d_1a_7x7.bn.running_var", "Conv3d_2c_3x3.conv3d.weight",
                "Mixed_3b.b1b.conv3d.weight", "Mixed_4f.b3b.bn.bias", "Mixed_5c.b2a.bn.running_mean"):
        assert key in state
    assert state["Conv3d_1a_7x7.conv3d.weight"].shape == (64, 3, 7, 7, 7)
    assert state["Mixed_5c.b0.conv3d.weight"].shape == (384, 832, 1, 1, 1)
    loaded = build_encoder("i3d", in_channels=3, weights=path)
    assert torch.equal(loaded.net.Mixed_4d.b2b.conv3d.weight, state["Mixed_4d.b2b.conv3d.weight"])
    flow_path, _ = _checkpoint(tmp_path, 2)
    assert build_encoder("i3d", in_channels=2, weights=flow_path).net.Conv3d_1a_7x7.conv3d.in_channels == 2
    depth = build_encoder("i3d", in_channels=1, weights=path)  # RGB weights, filters summed over channels
    assert torch.allclose(depth.net.Conv3d_1a_7x7.conv3d.weight[:, 0], state[STEM].sum(1))


def test_i3d_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="never downloads weights"):
        build_encoder("i3d", weights=tmp_path / "rgb_imagenet.pt")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an I3D"):
        build_encoder("i3d", weights=tmp_path / "other.pt")


@pytest.mark.parametrize("arch", ["r3d_18", "r2plus1d_18"])
def test_torchvision_video_resnets(arch: str) -> None:
    enc = build_encoder(arch, in_channels=2)
    assert enc.out_dim == 512 and enc(torch.randn(2, 2, 4, 32, 32)).shape == (2, 512)


def test_tiny_random_bert_and_local_reload(tmp_path: Path) -> None:
    enc = build_encoder("bert", pretrained=False, config=TINY_BERT).eval()
    x = tokens()
    assert enc.out_dim == TINY_BERT["hidden_size"] and enc(x).shape == (3, TINY_BERT["hidden_size"])
    enc.bert.save_pretrained(str(tmp_path / "bert"))
    again = build_encoder("bert", path=tmp_path / "bert").eval()
    assert torch.allclose(again(x), enc(x), atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 2, L\)"):
        enc(x[:, 0])
    with pytest.raises(ValueError, match="--max-length"):
        enc(tokens(length=TINY_BERT["max_position_embeddings"] + 1))


def test_bert_path_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(TypeError, match="path must be a local model folder"):
        check_encoder("bert", path=["models/bert"])


def test_bert_weights_only_from_local_files(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(BertWeightsNotFoundError, match="bert-base-uncased"):
        build_encoder("bert", path=tmp_path)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)
    with pytest.raises(BertWeightsNotFoundError, match="not in the local Hugging Face cache"):
        find_bert(None)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: "/cache/config.json")
    assert find_bert(None) == "bert-base-uncased"
