"""Kinetics-Sounds and VGGSound through the shared audio-video pipeline (tiny fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmrl_env.data.cache import open_cache
from mmrl_env.data.fixtures import write_frames, write_video, write_wav
from mmrl_env.data.kinetics import KS_SPLITS, load_kinetics_sounds, load_vggsound, read_ks_splits
from mmrl_env.data.prepare import main as prepare


def test_shipped_ks_lists() -> None:
    rows = read_ks_splits(None, Path("."))
    assert sum(r.split == "train" for r in rows) == 14799 and sum(r.split == "test" for r in rows) == 2597
    assert {r.label for r in rows} == set(range(31))


def test_kinetics_sounds_end_to_end(tmp_path: Path) -> None:
    lines = {s: (KS_SPLITS / f"my_{s}.txt").read_text().split()[:n] for s, n in (("train", 6), ("test", 2))}
    raw = tmp_path / "raw"
    for n, line in enumerate(lines["train"] + lines["test"]):
        clip, _, label = line.split(",")
        if n % 2:  # audio and frames both from the .mp4
            write_video(raw / "video" / f"{clip}.mp4", int(label), seconds=2, with_audio=True)
        else:
            write_wav(raw / "audio" / f"{clip}.wav", int(label) % 8, seconds=0.3)
            write_frames(raw / "frames" / clip, int(label), count=5)
    (tmp_path / "splits").mkdir()
    for s, rows in lines.items():
        (tmp_path / "splits" / f"my_{s}.txt").write_text("\n".join(rows) + "\n")
    assert prepare(["kinetics_sounds", "--raw", str(raw), "--out", str(tmp_path / "cache"),
                    "--splits", str(tmp_path / "splits"), "--size", "32", "--frames", "2", "--quiet"]) == 0
    manifest = open_cache(tmp_path / "cache").manifest
    assert manifest["written"] == 8, manifest["failed"]
    ds = load_kinetics_sounds(root=tmp_path / "cache", frames=2, image_size=32)
    assert ds.num_classes == 31 and len(ds.test) == 2 and len(ds.train) + len(ds.val) == 6
    assert ds.test.gather(0, torch.arange(2)).shape == (2, 1, 257, 625)  # 10 s windows
    assert ds.test.gather(1, torch.arange(2)).shape == (2, 2, 3, 32, 32)


def test_vggsound_csv_and_wrong_cache(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    rows = [("abc", 30, "dog barking", "train"), ("def", 5, "car horn", "train"), ("ghi", 0, "dog barking", "test")]
    for ytid, start, label, _ in rows:
        clip = f"{ytid}_{start:06d}"
        write_wav(raw / "audio" / f"{clip}.wav", len(label) % 5, seconds=0.2)
        write_frames(raw / "frames" / clip, len(label) % 5)
    (raw / "vggsound.csv").write_text("".join(f"{y},{s},{lab},{sp}\n" for y, s, lab, sp in rows))
    assert prepare(["vggsound", "--raw", str(raw), "--out", str(tmp_path / "cache"), "--size", "32", "--quiet"]) == 0
    ds = load_vggsound(root=tmp_path / "cache", image_size=32)
    assert ds.num_classes == 309 and ds.test.labels.tolist() == [1]  # sorted names: car horn, dog barking
    with pytest.raises(ValueError, match="holds a VGGSound cache, not KineticsSounds"):
        load_kinetics_sounds(root=tmp_path / "cache")
