"""CREMA-D (6 emotions, audio + face video; data README, audio-video datasets).

Raw layout (``--raw``)::

    AudioWAV/<clip>.wav                 e.g. AudioWAV/1001_DFA_ANG_XX.wav
    Image-01-FPS/<clip>/*.jpg           frames already extracted at 1 fps, or else
    VideoFlash/<clip>.flv               decoded with PyAV at 1 fps

Splits: by default the official lists shipped in ``mmrl_env/data/splits/cremad``
(``train.csv`` 6,698 / ``test.csv`` 744 rows ``<clip>,<EMO>``, no header). ``--splits DIR``
reads another directory of such files; ``--splits auto`` lists ``AudioWAV`` instead, reads
the emotion from the file name (``<actor>_<sentence>_<EMO>_<level>``) and holds out a
stratified 10 % as test with seed 0 (``validation.stratified_holdout``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrl_env.data.audio_video import AVDataset, ClipRow, PrepareError, load_av
from mmrl_env.data.validation import stratified_holdout

if TYPE_CHECKING:
    from mmrl_env.data.base import MultimodalDataset

EMOTIONS = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")  # label index = position (the reference loaders' order)
SHIPPED_SPLITS = Path(__file__).parent / "splits" / "cremad"
AUTO_TEST_FRACTION = 0.1


def _emotion(value: str, where: str) -> int:
    try:
        return EMOTIONS.index(value.strip().upper())
    except ValueError:
        raise PrepareError(f"{where}: unknown emotion {value!r}; expected one of {', '.join(EMOTIONS)}") from None


def _read_csv(path: Path, split: str) -> list[ClipRow]:
    if not path.is_file():
        raise PrepareError(f"split list {path} not found (expected rows '<clip>,<EMO>' without header)")
    out = []
    with path.open(newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 2 or not row[0].strip():
                raise PrepareError(f"{path}:{n}: expected '<clip>,<EMO>', got {','.join(row)!r}")
            out.append(ClipRow(row[0].strip(), _emotion(row[1], f"{path}:{n}"), split))
    return out


def _auto_split(raw: Path) -> list[ClipRow]:
    clips = sorted(p.stem for p in (raw / "AudioWAV").glob("*.wav"))
    labels = np.array([_emotion(c.split("_")[2] if c.count("_") >= 2 else "", f"AudioWAV/{c}.wav") for c in clips])
    _, test = stratified_holdout(labels, AUTO_TEST_FRACTION, seed=0)
    is_test = np.zeros(len(clips), bool)
    is_test[test] = True
    return [ClipRow(c, int(y), "test" if t else "train") for c, y, t in zip(clips, labels, is_test, strict=True)]


def read_splits(splits: Path | str | None, raw: Path) -> list[ClipRow]:
    """Rows of the official lists (default), of ``splits/{train,test}.csv``, or ``auto``."""
    if str(splits) == "auto":
        return _auto_split(raw)
    folder = Path(splits) if splits is not None else SHIPPED_SPLITS
    return _read_csv(folder / "train.csv", "train") + _read_csv(folder / "test.csv", "test")


CREMAD = AVDataset(
    name="CremaD", command="cremad", classes=EMOTIONS,
    audio=("AudioWAV/{clip}.wav",), frames=("Image-01-FPS/{clip}",), videos=("VideoFlash/{clip}.flv",),
    read_splits=read_splits,
    splits_help="a directory with train.csv and test.csv ('<clip>,<EMO>' rows), or 'auto'",
    auto_splits=True,
)


def load_cremad(root: str | Path | None = None, **kwargs: Any) -> MultimodalDataset:
    """CREMA-D from a prepared cache; kwargs as :func:`~mmrl_env.data.audio_video.load_av`
    (device, resident, frames=3, image_size=224, val_fraction=0.1, val_seed, seed)."""
    return load_av(CREMAD, root, **kwargs)
