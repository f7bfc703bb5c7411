"""Sarcasm (2-class multimodal sarcasm detection on tweets; image + text; data README).

Raw layout (``--raw``)::

    {train,valid,test}.json    one per split (``val.json`` / ``dev.json`` also accepted as
                               the validation split; ``.jsonl`` files too)
    images/<image>             (or dataset_image/<image>, the original release's folder)

Each record is ``{"image": ..., "text": ..., "label": 0 or 1}`` (1 = sarcastic): a JSON list
of records, or one record per line (JSON lines). ``image`` is a file name in the image
folder; a bare id gets ``.jpg`` appended. Without a validation file, a stratified
``val_fraction`` of train is held out at load time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrl_env.data.audio_video import PrepareError
from mmrl_env.data.image_text import ImageTextDataset, TextRecord, first_existing, load_image_text

if TYPE_CHECKING:
    from mmrl_env.data.base import MultimodalDataset

CLASSES = ("not sarcastic", "sarcastic")
SPLITS = {"train": ("train",), "val": ("valid", "val", "dev"), "test": ("test",)}
IMAGE_DIRS = ("images", "dataset_image")


def _load(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:  # JSON lines
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise PrepareError(f"{path}:{n}: not JSON ({err.msg})") from None
        return out


def _records(path: Path, split: str, images: str) -> list[TextRecord]:
    out = []
    for n, rec in enumerate(_load(path), 1):
        label = rec.get("label") if isinstance(rec, dict) else None
        if label not in (0, 1, "0", "1") or not str(rec.get("image", "")).strip() or "text" not in rec:
            raise PrepareError(f"{path}: record {n}: expected {{'image': ..., 'text': ..., 'label': 0 or 1}}, "
                               f"got {str(rec)[:120]}")
        image = str(rec["image"]).strip()
        image += "" if Path(image).suffix else ".jpg"
        out.append(TextRecord(f"{path.name}:{n}", f"{images}/{image}", str(rec["text"]).strip(), int(label), split))
    return out


def read_records(raw: Path) -> list[TextRecord]:
    images = first_existing(raw, IMAGE_DIRS, is_dir=True)
    out = []
    for split, stems in SPLITS.items():
        names = [f"{s}{ext}" for s in stems for ext in (".json", ".jsonl")]
        found = [n for n in names if (raw / n).is_file()]
        if not found and split != "val":
            raise PrepareError(f"annotation file {raw / names[0]} (or {', '.join(names[1:])}) not found")
        out += _records(raw / found[0], split, images) if found else []
    return out


SARCASM = ImageTextDataset(
    name="Sarcasm", command="sarcasm", classes=CLASSES, read_records=read_records,
    layout_lines=("<raw>/{train,valid,test}.json   JSON list or JSON lines of {\"image\", \"text\", \"label\"}",
                  "<raw>/images/<image>            (or <raw>/dataset_image/<image>; '.jpg' added to bare ids)"),
    max_length=128,
)


def load_sarcasm(root: str | Path | None = None, **kwargs: Any) -> MultimodalDataset:
    """Sarcasm from a prepared cache; kwargs as :func:`~mmrl_env.data.image_text.load_image_text`."""
    return load_image_text(SARCASM, root, **kwargs)
