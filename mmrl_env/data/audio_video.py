"""Audio-video datasets (CREMA-D, Kinetics-Sounds, VGGSound): description and loader.

A dataset is described once by an :class:`AVDataset` (its raw layout, classes, split-list
reader and audio recipe); ``build_cache.prepare_av`` turns the raw files into a cache
(``mmrl_env.data.cache``) and :func:`load_av` serves that cache as a
:class:`~mmrl_env.data.base.MultimodalDataset` of two modalities: ``audio`` (1×257×T log
spectrogram) and ``video`` (F×3×H×W ImageNet-normalised frames), both encoded by ResNet18.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mmrl_env.data.audio import AudioConfig
from mmrl_env.data.home import prepare_command

if TYPE_CHECKING:  # torch is imported when data is loaded, not by the recipes (prepare --help)
    from mmrl_env.data.base import MultimodalDataset

# Audio-video reference optimisation (BSS paper §4.1, AUG paper §5.2.2: SGD, momentum 0.9, wd 1e-4, lr 1e-2,
# divided by 10 when the loss saturates, here StepLR(70, 0.1)).
AUDIO_VIDEO_OPTIM: dict[str, Any] = {"name": "sgd", "lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4,
                                     "step_size": 70, "gamma": 0.1}


class ClipRow(NamedTuple):
    clip: str
    label: int
    split: str  # "train", "val" or "test"


class PrepareError(RuntimeError):
    """Raw data missing or unusable: the message says what was expected."""


@dataclass(frozen=True)
class AVDataset:
    """Everything dataset-specific; the pipeline itself is shared.

    ``audio`` / ``frames`` / ``videos`` are path patterns relative to the raw root with a
    ``{clip}`` field; the first one that exists is used. Frames come from an image
    directory when there is one, else from the video (PyAV, 1 fps).
    """

    name: str  # registry name, e.g. "CremaD"
    command: str  # prepare sub-command, e.g. "cremad"
    classes: tuple[str, ...]
    audio: tuple[str, ...]
    frames: tuple[str, ...]
    videos: tuple[str, ...]
    read_splits: Callable[[Path | str | None, Path], list[ClipRow]]  # (--splits, raw root) -> rows
    splits_help: str
    auto_splits: bool = False  # ``--splits auto``: split the clips found in the raw folder
    audio_cfg: AudioConfig = field(default_factory=AudioConfig)

    def layout(self) -> str:
        """The expected raw files, one per line, for error messages and ``--help``."""
        lines = {f"<raw>/{p}": "audio" + (" (if the above is missing)" if i else "") for i, p in enumerate(self.audio)}
        lines.update({f"<raw>/{p}/*.jpg": "frames (extracted at 1 fps)" for p in self.frames})
        for p in self.videos:
            key = f"<raw>/{p}"
            lines[key] = (lines[key] + "; " if key in lines else "") + "video (frames decoded at 1 fps if no jpgs)"
        width = max(map(len, lines)) + 2
        return "\n".join(f"    {k:<{width}}{v}" for k, v in lines.items())

    def prepare_command(self, out: str | Path | None = None) -> str:
        """The prepare command line; without ``out`` it writes to the data home."""
        return prepare_command(self.command, out)


def load_av(ds: AVDataset, root: Path | str | None, device: str = "cpu", resident: bool = False,
            frames: int = 3, image_size: int = 224, val_fraction: float = 0.1, val_seed: int = 0,
            seed: int = 0) -> MultimodalDataset:
    """Serve a prepared cache (``root``, default ``$MMRL_DATA/<command>``). Validation: the
    cache's ``val`` rows if the lists had any, else a stratified ``val_fraction`` of train
    chosen with ``val_seed`` (see ``validation``)."""
    from mmrl_env.data.base import ModalitySpec, MultimodalDataset
    from mmrl_env.data.cache import open_prepared, split_rows
    from mmrl_env.data.cached_split import CachedSplit, FramesView, ModalityView, SpectrogramView

    cache = open_prepared(ds.name, ds.command, root, ds.prepare_command(root), ds.layout())
    train, val, test = split_rows(cache, val_fraction, val_seed)
    stored = cache.manifest["config"]["frames"]["count"]
    views: list[ModalityView] = [SpectrogramView(), FramesView(stored, frames, image_size)]
    arrays = [cache.arrays["audio"], cache.arrays["frames"]]

    def split(rows: np.ndarray, offset: int) -> CachedSplit:
        return CachedSplit(arrays, views, rows, cache.labels[rows], device, resident, seed + offset)

    modalities = (ModalitySpec("audio", "resnet18", {"in_channels": 1}),
                  ModalitySpec("video", "resnet18", {"in_channels": 3}))
    return MultimodalDataset(ds.name, modalities, len(ds.classes), split(train, 0), split(val, 1), split(test, 2),
                             optim_defaults=dict(AUDIO_VIDEO_OPTIM), source=cache.root)
