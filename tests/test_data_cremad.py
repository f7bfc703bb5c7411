"""CREMA-D end to end on a 12-clip fixture in the real on-disk layout (no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import mmrl_env  # noqa: F401  (registers the env ids)
from mmrl_env.data.audio import AudioConfig, read_audio, spectrogram
from mmrl_env.data.cremad import EMOTIONS, SHIPPED_SPLITS, load_cremad, read_splits
from mmrl_env.data.fixtures import real_cremad_rows, write_cremad, write_split_csvs, write_wav
from mmrl_env.data.frames import even_indices
from mmrl_env.data.prepare import main as prepare

ROOT = Path(__file__).resolve().parent.parent

SIZE = 32  # stored frame side: keeps the CPU test fast (the default is 224)


def run_prepare(raw: Path, out: Path, splits: Path | str, *extra: str) -> int:
    return prepare(["cremad", "--raw", str(raw), "--out", str(out), "--splits", str(splits),
                    "--size", str(SIZE), "--quiet", *extra])


@pytest.fixture(scope="module")
def rows() -> dict[str, list[tuple[str, str]]]:
    return real_cremad_rows({"train": 8, "test": 4})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, rows) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("cremad")
    raw, splits, cache = base / "raw", base / "splits", base / "cache"
    write_cremad(raw, rows["train"] + rows["test"], videos=[rows["train"][0][0]])  # one clip only as .flv
    write_split_csvs(splits, rows)
    assert run_prepare(raw, cache, splits) == 0
    return raw, splits, cache


def test_shipped_split_lists_are_the_official_ones() -> None:
    rows = read_splits(None, Path("."))
    assert sum(r.split == "train" for r in rows) == 6698 and sum(r.split == "test" for r in rows) == 744
    assert {r.label for r in rows} == set(range(len(EMOTIONS)))
    assert (SHIPPED_SPLITS / "train.csv").is_file()


def test_spectrogram_matches_reference_shape(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", 0, seconds=0.5)
    wave = read_audio(tmp_path / "a.wav", 22_050)
    assert wave.size == 22_050 // 2
    spec = spectrogram(wave, AudioConfig())
    assert spec.shape == (257, 188) == AudioConfig().shape
    assert np.isfinite(spec).all()


def test_even_indices_spread_over_the_clip() -> None:
    assert even_indices(10, 3).tolist() == [1, 5, 8]
    assert even_indices(3, 3).tolist() == [0, 1, 2]
    assert even_indices(2, 3).tolist() == [0, 1, 1]


def test_cache_layout_and_manifest(prepared, rows) -> None:
    _, _, cache = prepared
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["complete"] and manifest["written"] == 12 and manifest["failed"] == {}
    assert manifest["clips"][:8] == [c for c, _ in rows["train"]]
    audio = np.load(cache / "audio.npy", mmap_mode="r")
    frames = np.load(cache / "frames.npy", mmap_mode="r")
    labels = np.load(cache / "labels.npy")
    assert isinstance(audio, np.memmap) and audio.dtype == np.float16 and audio.shape == (12, 257, 188)
    assert frames.dtype == np.uint8 and frames.shape == (12, 3, 3, SIZE, SIZE)
    assert labels.dtype == np.int64 and labels[:8].tolist() == [EMOTIONS.index(e) for _, e in rows["train"]]
    assert frames[0].std() > 0  # the .flv clip was decoded, not left empty


def test_prepare_resumes(prepared, capsys) -> None:
    raw, splits, cache = prepared
    before = (cache / "audio.npy").stat().st_mtime_ns
    assert run_prepare(raw, cache, splits) == 0
    assert "12 of 12 clips already cached" in capsys.readouterr().out
    assert (cache / "audio.npy").stat().st_mtime_ns == before


def test_prepare_refuses_other_recipe(prepared, capsys) -> None:
    raw, splits, cache = prepared
    assert run_prepare(raw, cache, splits, "--frames", "2") == 2
    assert "--overwrite" in capsys.readouterr().err


def test_loader_splits_and_gather(prepared) -> None:
    ds = load_cremad(root=prepared[2], image_size=SIZE)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (6, 2, 4)  # val: one of each class with 2 samples
    assert ds.num_classes == 6 and ds.modality_names == ("audio", "video")
    assert ds.optim_defaults["lr"] == 1e-2 and ds.optim_defaults["momentum"] == 0.9
    idx = torch.tensor([3, 0, 1])
    audio = ds.test.gather(0, idx)
    assert audio.shape == (3, 1, 257, 188) and audio.dtype == torch.float32
    ref = torch.from_numpy(np.load(prepared[2] / "audio.npy")[8 + idx.numpy()].astype(np.float32))
    assert torch.equal(audio[:, 0], ref)  # rows come back in the caller's order
    video = ds.train.gather(1, idx, train=True)
    assert video.shape == (3, 3, 3, SIZE, SIZE) and torch.isfinite(video).all()
    assert ds.test.gather_labels(idx).tolist() == ds.test.labels[idx].tolist()


def test_resident_matches_memmap_and_augmentation_is_seeded(prepared) -> None:
    a = load_cremad(root=prepared[2], image_size=SIZE, seed=3)
    b = load_cremad(root=prepared[2], image_size=SIZE, seed=3, resident=True)
    idx = torch.arange(4)
    for j in (0, 1):
        assert torch.equal(a.test.gather(j, idx), b.test.gather(j, idx))
    assert torch.equal(a.train.gather(1, idx, train=True), b.train.gather(1, idx, train=True))
    assert load_cremad(root=prepared[2], image_size=SIZE, frames=2).test.gather(1, idx).shape[1] == 2


def test_env_step_on_cremad(prepared) -> None:
    env = gymnasium.make("DUS-CremaD", dataset_kwargs={"root": str(prepared[2]), "image_size": SIZE},
                         epochs=1, batch_size=4, val_size=4, device="cpu")
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.array([1.0, -1.0], np.float32))
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    assert set(info["val_acc_modality"]) == {"audio", "video"}
    assert info["n"]["audio"] != info["n"]["video"]  # unequal per-modality batches gathered
    env.close()


def test_missing_root_names_layout_and_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_cremad(root=tmp_path / "nowhere")
    msg = str(err.value)
    assert "AudioWAV/{clip}.wav" in msg and "Image-01-FPS/{clip}" in msg
    assert f"python -m mmrl_env.data.prepare cremad --raw <raw> --out {tmp_path / 'nowhere'}" in msg
    with pytest.raises(FileNotFoundError, match="prepare cremad"):
        gymnasium.make("DUS-CremaD", dataset_kwargs={"root": str(tmp_path)})


def test_corrupt_and_missing_files_are_reported(tmp_path: Path, rows, capsys) -> None:
    raw = tmp_path / "raw"
    train = rows["train"][:8]
    write_cremad(raw, train[:7] + rows["test"][:2])  # train[7] has no files at all
    bad_wav, bad_jpg, no_frames = train[1][0], train[2][0], train[3][0]
    (raw / "AudioWAV" / f"{bad_wav}.wav").write_bytes(b"RIFF not really a wav")
    (raw / "Image-01-FPS" / bad_jpg / "frame_00002.jpg").write_bytes(b"\xff\xd8 truncated")
    shutil.rmtree(raw / "Image-01-FPS" / no_frames)
    write_split_csvs(tmp_path / "splits", {"train": train, "test": rows["test"][:2]})
    assert run_prepare(raw, tmp_path / "cache", tmp_path / "splits") == 0
    out = capsys.readouterr().out
    absent = train[7][0]
    assert "6 of 10 clips cached, 4 failed" in out
    assert f"corrupt AudioWAV/{bad_wav}.wav" in out and f"missing AudioWAV/{absent}.wav" in out
    assert f"corrupt Image-01-FPS/{bad_jpg}" in out
    assert f"missing Image-01-FPS/{no_frames} or VideoFlash/{no_frames}.flv" in out
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert set(manifest["failed"]) == {bad_wav, bad_jpg, no_frames, absent}
    ds = load_cremad(root=tmp_path / "cache", image_size=SIZE)
    assert len(ds.train) + len(ds.val) == 4 and len(ds.test) == 2


def test_interrupted_prepare_resumes(tmp_path: Path, rows, monkeypatch, capsys) -> None:
    from mmrl_env.data import build_cache

    clips = rows["train"][:4] + rows["test"][:2]
    write_cremad(tmp_path / "raw", clips)
    write_split_csvs(tmp_path / "splits", {"train": rows["train"][:4], "test": rows["test"][:2]})
    real, calls = build_cache.process_clip, []

    def interrupted(*args, **kwargs):
        calls.append(args[2])
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(build_cache, "process_clip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(tmp_path / "raw", tmp_path / "cache", tmp_path / "splits")
    with pytest.raises(ValueError, match="incomplete(.|\n)*prepare command: python -m mmrl_env.data.prepare cremad"):
        load_cremad(root=tmp_path / "cache")
    monkeypatch.setattr(build_cache, "process_clip", real)
    assert run_prepare(tmp_path / "raw", tmp_path / "cache", tmp_path / "splits") == 0
    assert "3 of 6 clips already cached" in capsys.readouterr().out
    assert len(load_cremad(root=tmp_path / "cache", image_size=SIZE).test) == 2


def test_nothing_usable_fails_clearly(tmp_path: Path, rows, capsys) -> None:
    (tmp_path / "raw" / "AudioWAV").mkdir(parents=True)
    write_split_csvs(tmp_path / "splits", {"train": rows["train"][:2], "test": rows["test"][:1]})
    assert run_prepare(tmp_path / "raw", tmp_path / "cache", tmp_path / "splits") == 2
    assert "no usable CremaD clip" in capsys.readouterr().err
    assert run_prepare(tmp_path / "absent", tmp_path / "cache2", tmp_path / "splits") == 2
    assert "AudioWAV/{clip}.wav" in capsys.readouterr().err


def test_malformed_split_list_names_file_and_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / "train.csv").write_text("1001_DFA_ANG_XX,ANG\n1001_DFA_HAP_XX\n")
    (tmp_path / "test.csv").write_text("1001_DFA_SAD_XX,SAD\n")
    assert run_prepare(tmp_path, tmp_path / "cache", tmp_path) == 2
    assert f"{tmp_path / 'train.csv'}:2: expected '<clip>,<EMO>'" in capsys.readouterr().err
    (tmp_path / "train.csv").write_text("1001_DFA_ANG_XX,ANGRY\n")
    assert run_prepare(tmp_path, tmp_path / "cache", tmp_path) == 2
    assert "unknown emotion 'ANGRY'" in capsys.readouterr().err


def test_validation_is_deterministic_and_disjoint(prepared) -> None:
    a, b = load_cremad(root=prepared[2]), load_cremad(root=prepared[2])
    assert np.array_equal(a.val.rows, b.val.rows)
    assert not set(a.val.rows) & set(a.train.rows) and not set(a.val.rows) & set(a.test.rows)
    c = load_cremad(root=prepared[2], val_seed=1, val_fraction=0.3)
    assert len(c.val) == 2 and len(c.train) + len(c.val) == 8  # one of each class with 2 train clips


def test_auto_split_is_deterministic(tmp_path: Path) -> None:
    clips = [(f"10{a:02d}_DFA_{e}_XX", e) for a in range(5) for e in EMOTIONS]
    for clip, e in clips:
        write_wav(tmp_path / "AudioWAV" / f"{clip}.wav", EMOTIONS.index(e), seconds=0.1)
    first, second = read_splits("auto", tmp_path), read_splits("auto", tmp_path)
    assert first == second and len(first) == 30
    assert sum(r.split == "test" for r in first) == 6  # one per class (10 % of 5, at least 1)


@pytest.mark.slow
def test_full_size_episode(tmp_path: Path, rows) -> None:
    """Default 224² frames and a whole (tiny) episode with ResNet18 on both modalities."""
    write_cremad(tmp_path / "raw", rows["train"] + rows["test"])
    write_split_csvs(tmp_path / "splits", rows)
    assert prepare(["cremad", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "c"),
                    "--splits", str(tmp_path / "splits"), "--quiet"]) == 0
    env = gymnasium.make("DUS-CremaD", dataset_kwargs={"root": str(tmp_path / "c"), "resident": True},
                         epochs=1, batch_size=4, val_size=4, device="cpu")
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert "fused_acc" in info["test"]


@pytest.mark.slow
def test_prepare_with_worker_processes(tmp_path: Path, rows, prepared) -> None:
    """Two spawn workers give the same cache as the single-process run (spawn costs seconds)."""
    raw, splits, cache = prepared
    assert run_prepare(raw, tmp_path / "c", splits, "--workers", "2") == 0
    for name in ("audio", "frames", "labels"):
        assert np.array_equal(np.load(cache / f"{name}.npy"), np.load(tmp_path / "c" / f"{name}.npy"))


def test_nan_audio_refused_before_the_frames_are_decoded(tmp_path: Path) -> None:
    """A NaN spectrogram fails the clip on its wav alone: no frame source is even looked for."""
    import soundfile as sf

    from mmrl_env.data.build_cache import process_clip
    from mmrl_env.data.cremad import CREMAD

    wave = np.zeros(8000, np.float32)
    wave[100] = np.nan
    (tmp_path / "AudioWAV").mkdir()
    sf.write(str(tmp_path / "AudioWAV" / "clip.wav"), wave, 16_000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"corrupt AudioWAV/clip.wav: its spectrogram has NaN"):
        process_clip(CREMAD, tmp_path, "clip", 3, SIZE)  # the clip has no frames at all


def test_files_cut_short_fail_instead_of_being_cached(tmp_path: Path, rows, capsys) -> None:
    """A .flv cut to 300 bytes decodes to one corrupt grey frame, a .wav cut to 1000 bytes to its
    first 478 samples: both are damaged files, listed under 'failed', never cached as data."""
    raw, train = tmp_path / "raw", rows["train"][:4]
    cut_video, cut_wav = train[0][0], train[1][0]
    write_cremad(raw, train + rows["test"][:1], videos=[cut_video])
    flv, wav = raw / "VideoFlash" / f"{cut_video}.flv", raw / "AudioWAV" / f"{cut_wav}.wav"
    flv.write_bytes(flv.read_bytes()[:300])
    wav.write_bytes(wav.read_bytes()[:1000])
    write_split_csvs(tmp_path / "splits", {"train": train, "test": rows["test"][:1]})
    assert run_prepare(raw, tmp_path / "cache", tmp_path / "splits") == 0
    out = capsys.readouterr().out
    assert "3 of 5 clips cached, 2 failed" in out
    assert f"corrupt VideoFlash/{cut_video}.flv: no decodable video frames" in out
    assert f"corrupt AudioWAV/{cut_wav}.wav: truncated: it holds 478 of the 8000 samples" in out
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert set(manifest["failed"]) == {cut_video, cut_wav}
    ds = load_cremad(root=tmp_path / "cache", image_size=SIZE)
    assert len(ds.train) + len(ds.val) == 2


def test_fingerprint_of_a_cache_lists_its_files_without_reading_them(prepared) -> None:
    import os

    from mmrl_env.data.fingerprint import changes, fingerprint

    cache = prepared[2]
    before = fingerprint("CremaD", {"root": str(cache), "image_size": SIZE})
    assert {"manifest.json", "audio.npy", "frames.npy", "labels.npy"} <= set(before["files"])
    assert before["source"] == str(cache.resolve())
    stat = (cache / "audio.npy").stat()
    os.utime(cache / "audio.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        assert changes(before, fingerprint("CremaD", {"root": str(cache), "image_size": SIZE})) == \
            ["audio.npy was modified"]
    finally:
        os.utime(cache / "audio.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_video_cut_after_its_first_second_is_refused(tmp_path: Path) -> None:
    """Intact frames that cover a third of the clip its header declares: cut short, not cached."""
    from mmrl_env.data.fixtures import write_video
    from mmrl_env.data.frames import frames_from_video

    write_video(tmp_path / "whole.flv", 1)
    data = (tmp_path / "whole.flv").read_bytes()
    (tmp_path / "cut.flv").write_bytes(data[: int(len(data) * 0.8)])
    assert frames_from_video(tmp_path / "whole.flv", 3, SIZE).shape == (3, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"truncated: its frames cover 1.0 s of the 3.0 s its header declares"):
        frames_from_video(tmp_path / "cut.flv", 3, SIZE)


def test_a_partial_set_costs_disk_and_memory_for_its_clips_only(tmp_path: Path, rows, capsys) -> None:
    """Issue 27: 13 clips under the shipped 7,442-clip lists made 4 GB of (sparse) arrays.
    Now the arrays hold a row per clip present, prepare says how much of each split it
    found (exit 2 unless --partial), and loading allocates far less than one full row set."""
    import tracemalloc

    raw, cache = tmp_path / "raw", tmp_path / "cache"
    write_cremad(raw, rows["train"][:6] + rows["test"][:2])
    args = ["cremad", "--raw", str(raw), "--out", str(cache), "--size", str(SIZE), "--quiet"]  # shipped lists
    assert prepare(args) == 2
    err = capsys.readouterr().err
    assert "train 6 of 6698 (0.1 %), test 2 of 744 (0.3 %)" in err and "--splits auto" in err and "--partial" in err
    assert prepare([*args, "--partial"]) == 0
    spec_bytes = {"audio": 2 * np.prod(AudioConfig().shape), "frames": 3 * 3 * SIZE * SIZE}
    for name, row in spec_bytes.items():
        size = (cache / f"{name}.npy").stat().st_size
        assert 8 * row <= size <= 8 * row + 4096, (name, size)  # 8 rows + the .npy header, not 7,442 rows
    tracemalloc.start()
    ds = load_cremad(root=cache, image_size=SIZE)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ds.train) + len(ds.val) == 6 and len(ds.test) == 2
    assert peak < 16 * 2**20, peak  # the 7,442-entry manifest and row maps; 1 full row set would be 4 GB


def test_resume_grows_the_cache_when_raw_clips_arrive(tmp_path: Path, rows, capsys) -> None:
    raw, splits = tmp_path / "raw", tmp_path / "splits"
    train, test = rows["train"][:6], rows["test"][:2]
    write_split_csvs(splits, {"train": train, "test": test})
    write_cremad(raw, train[:3] + test)
    assert run_prepare(raw, tmp_path / "cache", splits, "--partial") == 0
    first = np.load(tmp_path / "cache" / "audio.npy")
    assert first.shape[0] == 5
    write_cremad(raw, train[3:])
    assert run_prepare(raw, tmp_path / "cache", splits) == 0
    assert "8 of 8 clips cached" in capsys.readouterr().out
    grown = np.load(tmp_path / "cache" / "audio.npy")
    assert grown.shape[0] == 8 and np.array_equal(grown[:5], first)  # old rows kept, new ones appended
    ds = load_cremad(root=tmp_path / "cache", image_size=SIZE)
    assert len(ds.train) + len(ds.val) == 6 and len(ds.test) == 2


def test_documented_cpu_smoke_setting_runs_through_the_cli(prepared, tmp_path: Path, capsys) -> None:
    """The CPU smoke-test setting docs/datasets.md gives for DUS-CremaD ("Hardware and run time")
    runs end to end on a prepared cache, table and plots included. The setting is read from that
    table; its batch of 8 is cut to 4: the fixture trains on 6 clips, and a batch larger than the
    split is refused."""
    from mmrl_training.train_agent import main as train

    row = next(line for line in (ROOT / "docs" / "datasets.md").read_text().splitlines()
               if line.startswith("| `DUS-CremaD` |"))
    setting = row.split("|")[3].split("`")[1].split()
    assert sorted(setting) == ["batch_size=8", "dataset_kwargs.image_size=64", "epochs=1"], setting
    setting = ["batch_size=4" if s == "batch_size=8" else s for s in setting]
    run = train(["--env", "DUS-CremaD", "--algo", "dus-h", "-n", "2", "-f", str(tmp_path), "--eval-episodes", "1",
                 "--baselines", "uniform", "--no-progress", "--env-kwargs", f"data_root={prepared[2]}", *setting,
                 "val_size=4", "device=cpu"])
    assert "Final comparison on DUS-CremaD" in capsys.readouterr().out
    assert (run / "results.json").is_file() and (run / "actions.png").is_file()


def test_predictions_of_large_clips_run_in_bounded_chunks(prepared) -> None:
    """Issue 27: a prediction chunk held up to 1,024 samples whatever their size (CREMA-D at 224 px:
    tens of GB of activations). Chunks now hold at most EVAL_CHUNK_ELEMENTS input values; the
    predictions are those of one big chunk."""
    from mmrl_env.inner_run import run as inner_run
    from mmrl_env.inner_run.settings import InnerRunConfig

    data = load_cremad(root=prepared[2], image_size=SIZE)
    t = inner_run.InnerRun(data, InnerRunConfig(batch_size=4, epochs=1), num_runs=2, device="cpu")
    t.reset([0, 1])
    per_clip = 257 * 188 + 3 * 3 * SIZE * SIZE
    assert t.eval_chunk(data.test) == min(1024, inner_run.EVAL_CHUNK_ELEMENTS // per_clip)
    whole, y = t.predict(data.test)
    t._eval_chunk = 1  # one clip at a time: the same predictions
    parts, y1 = t.predict(data.test)
    assert torch.equal(y, y1) and torch.allclose(whole.fused, parts.fused, atol=1e-5)
