"""Image-text datasets (Twitter2015, Sarcasm): description, cache recipe and loader.

A dataset is described once by an :class:`ImageTextDataset` (classes, raw layout and a
reader of its annotation files); :func:`prepare_image_text` caches it (images resized to
uint8, text tokenised to fixed-length BERT ids) and :func:`load_image_text` serves the
cache as two modalities: ``image`` (3×H×W, ImageNet-normalised, ResNet50 with ImageNet
weights) and ``text`` (int64 (2, L): ids and attention mask, BERT).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mmrl_env.data.audio_video import PrepareError
from mmrl_env.data.build_cache import fill_cache
from mmrl_env.data.cache import CacheWriter, open_prepared, split_rows
from mmrl_env.data.home import prepare_command
from mmrl_env.data.tokens import load_tokenizer, tokenize

if TYPE_CHECKING:  # torch is imported when data is loaded, not by the recipes (prepare --help)
    import torch
    from torch import Tensor

    from mmrl_env.data.base import MultimodalDataset

# Image-text reference optimisation (BSS paper §4.1: Adam, lr 1e-5, batch 64; no LR decay named).
IMAGE_TEXT_OPTIM: dict[str, Any] = {"name": "adam", "lr": 1e-5, "weight_decay": 0.0, "gamma": 1.0}
RESNET50_IMAGENET = "resnet50-0676ba61.pth"  # torchvision's IMAGENET1K_V1 file name (the papers' weights)


class TextRecord(NamedTuple):
    id: str  # unique row name, e.g. "train/12"; failures are reported under it
    image: str  # image path relative to the raw root
    text: str
    label: int
    split: str  # "train", "val" or "test"


@dataclass(frozen=True)
class ImageTextDataset:
    """Everything dataset-specific; preparation and loading are shared."""

    name: str  # registry name
    command: str  # prepare sub-command
    classes: tuple[str, ...]
    read_records: Callable[[Path], list[TextRecord]]  # raw root -> rows of all splits
    layout_lines: tuple[str, ...]  # the expected raw files, for messages and --help
    max_length: int = 128  # default token length

    def layout(self) -> str:
        return "\n".join(f"    {line}" for line in self.layout_lines)

    def prepare_command(self, out: str | Path | None = None) -> str:
        """The prepare command line; without ``out`` it writes to the data home."""
        return prepare_command(self.command, out, " --tokenizer <bert-base-uncased dir>")


def first_existing(raw: Path, candidates: Sequence[str], is_dir: bool = False) -> str:
    """The first of ``candidates`` (relative to ``raw``) that exists, else the first one,
    so that a missing file is reported under its documented name."""
    for c in candidates:
        if (raw / c).is_dir() if is_dir else (raw / c).is_file():
            return c
    return candidates[0]


def _image_row(raw: Path, size: int, image: str) -> dict[str, np.ndarray] | str:
    """One image → (3, size, size) uint8, or the failure message naming the file."""
    from PIL import Image

    from mmrl_env.data.frames import _to_array  # the frames' resize recipe, shared

    path = raw / image
    if not path.is_file():
        return f"missing {image}"
    try:
        with Image.open(path) as img:
            return {"image": _to_array(img, size)}
    except (OSError, ValueError) as err:
        return f"corrupt {image}: {err}"


def prepare_image_text(ds: ImageTextDataset, raw: Path | str, out: Path | str, tokenizer: Path | str | None,
                       max_length: int | None = None, size: int = 224, overwrite: bool = False,
                       progress: bool = True, workers: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build (or resume) the cache of ``ds``; tokens are written up front (cheap, deterministic),
    images row by row, so resuming and failure reports work as for audio-video."""
    raw, out = Path(raw), Path(out)
    if not raw.is_dir():
        raise PrepareError(f"raw {ds.name} directory {raw} does not exist; expected layout:\n{ds.layout()}")
    records = ds.read_records(raw)
    if not records:
        raise PrepareError(f"the {ds.name} annotation files in {raw} hold no rows; expected layout:\n{ds.layout()}")
    length = max_length or ds.max_length
    tok = load_tokenizer(tokenizer)
    tokens = tokenize(tok, [r.text for r in records], length)
    text_cfg = {"max_length": length, "tokenizer": str(Path(str(tokenizer)).expanduser().resolve()),
                "vocab_size": len(tok)}
    meta = {"dataset": ds.name, "clips": [r.id for r in records], "splits": [r.split for r in records],
            "classes": list(ds.classes), "config": {"image": {"size": size}, "text": text_cfg}}
    arrays = {"image": ((3, size, size), "uint8"), "text": ((2, length), "int64")}
    writer = CacheWriter(out, meta, arrays, np.array([r.label for r in records]), overwrite)
    writer.arrays["text"][:] = tokens
    return fill_cache(ds.name, writer, [r.id for r in records], partial(_image_row, raw, size), raw, ds.layout(),
                      workers, progress, log, inputs=[r.image for r in records])


class TokenView:
    """int64 (B, 2, L) token ids + mask, served as stored (no augmentation)."""

    def read(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return array[rows]

    def __call__(self, x: Tensor, train: bool, generator: torch.Generator | None = None) -> Tensor:
        return x.long()


def _bert_dir(tokenizer_dir: str) -> str | None:
    """The prepare run's tokenizer directory when it also holds BERT weights (a full snapshot)."""
    return tokenizer_dir if (Path(tokenizer_dir) / "config.json").is_file() else None


def load_image_text(ds: ImageTextDataset, root: Path | str | None, device: str = "cpu", resident: bool = False,
                    image_size: int = 224, val_fraction: float = 0.1, val_seed: int = 0, seed: int = 0,
                    image_encoder: dict[str, Any] | None = None,
                    text_encoder: dict[str, Any] | None = None) -> MultimodalDataset:
    """Serve a prepared cache (``root``, default ``$MMRL_DATA/<command>``). The official dev
    split is the validation set (else a stratified ``val_fraction`` of train). ``image_encoder``
    / ``text_encoder`` override the encoders' kwargs: by default ResNet50 reads ``<torch hub
    dir>/checkpoints/resnet50-0676ba61.pth`` and BERT the prepare run's tokenizer directory if
    it holds weights, else the local HF cache."""
    import torch

    from mmrl_env.data.base import ModalitySpec, MultimodalDataset
    from mmrl_env.data.cached_split import CachedSplit, FramesView, ModalityView

    cache = open_prepared(ds.name, ds.command, root, ds.prepare_command(root), ds.layout())
    image_kwargs = {"weights": str(Path(torch.hub.get_dir()) / "checkpoints" / RESNET50_IMAGENET),
                    **(image_encoder or {})}
    if image_kwargs.get("weights") is not None and not Path(image_kwargs["weights"]).expanduser().is_file():
        raise FileNotFoundError(
            f"{ds.name} uses ImageNet ResNet50 weights, not found at {image_kwargs['weights']}; mmrl never downloads "
            "weights: put torchvision's resnet50 state dict there, or pass dataset_kwargs={'image_encoder': "
            "{'weights': PATH}} (or {'weights': None} to train from scratch)")
    # the BERT weights are resolved (and a missing copy reported) where the encoder is built
    text_kwargs = {"path": _bert_dir(cache.manifest["config"]["text"]["tokenizer"]), **(text_encoder or {})}
    train, val, test = split_rows(cache, val_fraction, val_seed)
    views: list[ModalityView] = [FramesView(1, 1, image_size), TokenView()]
    arrays = [cache.arrays["image"], cache.arrays["text"]]

    def split(rows: np.ndarray, offset: int) -> CachedSplit:
        return CachedSplit(arrays, views, rows, cache.labels[rows], device, resident, seed + offset)

    modalities = (ModalitySpec("image", "resnet50", image_kwargs), ModalitySpec("text", "bert", text_kwargs))
    return MultimodalDataset(ds.name, modalities, len(ds.classes), split(train, 0), split(val, 1), split(test, 2),
                             optim_defaults=dict(IMAGE_TEXT_OPTIM), source=cache.root)
