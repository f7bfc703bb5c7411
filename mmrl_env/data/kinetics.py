"""Kinetics-Sounds (31 classes) and VGGSound (309 classes): YouTube clips, same pipeline.

Raw layout (``--raw``), the same for both::

    audio/<clip>.wav            or the audio track of video/<clip>.mp4 (PyAV)
    frames/<clip>/*.jpg         frames already extracted, or else
    video/<clip>.mp4            decoded with PyAV at 1 fps

Audio: 10 s windows (the clips' length) with the CREMA-D STFT (257×625 per clip).

Kinetics-Sounds splits: the lists shipped in ``mmrl_env/data/splits/kinetics_sounds``
(``my_train.txt`` / ``my_test.txt``, rows ``<clip>,10,<label>``; the clip id is the first
field as written, used as the file stem). VGGSound: its CSV ``ytid,start,label,split``
(default ``<raw>/vggsound.csv``); clip id ``<ytid>_<start:06d>``; classes are the sorted
label names; ``split`` is ``train`` or ``test``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrl_env.data.audio import AudioConfig
from mmrl_env.data.audio_video import AVDataset, ClipRow, PrepareError, load_av

if TYPE_CHECKING:
    from mmrl_env.data.base import MultimodalDataset

KS_SPLITS = Path(__file__).parent / "splits" / "kinetics_sounds"
KS_CLASSES = 31
VGGSOUND_CLASSES = 309
YOUTUBE_LAYOUT: dict[str, Any] = dict(audio=("audio/{clip}.wav", "video/{clip}.mp4"), frames=("frames/{clip}",),
                                      videos=("video/{clip}.mp4",), audio_cfg=AudioConfig(seconds=10.0))


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise PrepareError(f"split list {path} not found")
    with path.open(newline="") as f:
        return [r for r in csv.reader(f) if r]


def read_ks_splits(splits: Path | str | None, raw: Path) -> list[ClipRow]:
    folder = Path(splits) if splits is not None else KS_SPLITS
    out = []
    for name, split in (("my_train.txt", "train"), ("my_test.txt", "test")):
        for n, row in enumerate(_rows(folder / name), 1):
            label = row[-1].strip()
            if len(row) != 3 or not label.isdigit() or int(label) >= KS_CLASSES:
                raise PrepareError(f"{folder / name}:{n}: expected '<clip>,10,<label 0..30>', got {','.join(row)!r}")
            out.append(ClipRow(row[0].strip(), int(label), split))
    return out


def read_vggsound_splits(splits: Path | str | None, raw: Path) -> list[ClipRow]:
    path = Path(splits) if splits is not None else raw / "vggsound.csv"
    rows = _rows(path)
    bad = [n for n, r in enumerate(rows, 1)
           if len(r) != 4 or not r[1].strip().isdigit() or r[3].strip() not in ("train", "test")]
    if bad:
        raise PrepareError(f"{path}:{bad[0]}: expected 'ytid,start,label,split' with split train/test")
    classes = sorted({r[2].strip() for r in rows})
    index = {c: i for i, c in enumerate(classes)}
    return [ClipRow(f"{r[0].strip()}_{int(r[1]):06d}", index[r[2].strip()], r[3].strip()) for r in rows]


KINETICS_SOUNDS = AVDataset(name="KineticsSounds", command="kinetics_sounds",
                            classes=tuple(str(i) for i in range(KS_CLASSES)), read_splits=read_ks_splits,
                            splits_help="a directory with my_train.txt and my_test.txt", **YOUTUBE_LAYOUT)
VGGSOUND = AVDataset(name="VGGSound", command="vggsound", classes=tuple(str(i) for i in range(VGGSOUND_CLASSES)),
                     read_splits=read_vggsound_splits, splits_help="the VGGSound CSV 'ytid,start,label,split'",
                     **YOUTUBE_LAYOUT)


def load_kinetics_sounds(root: str | Path | None = None, **kwargs: Any) -> MultimodalDataset:
    """Kinetics-Sounds from a prepared cache (kwargs as ``load_av``)."""
    return load_av(KINETICS_SOUNDS, root, **kwargs)


def load_vggsound(root: str | Path | None = None, **kwargs: Any) -> MultimodalDataset:
    """VGGSound from a prepared cache (kwargs as ``load_av``)."""
    return load_av(VGGSOUND, root, **kwargs)
