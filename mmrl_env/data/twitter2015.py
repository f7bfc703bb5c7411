"""Twitter2015 (3-class target-oriented multimodal sentiment; image + tweet; data README).

Raw layout (``--raw``), as the dataset is commonly distributed::

    twitter2015/{train,dev,test}.tsv     (or {train,dev,test}.tsv directly in the raw root)
    twitter2015_images/<image id>        (or images/<image id>)

TSV: a header ``index	#1 Label	#2 ImageID	#3 String	#3 String`` then one row per
(tweet, target): index, label (0 negative, 1 neutral, 2 positive), image file name, the
tweet with its target replaced by ``$T$``, and the target. The text we tokenise is the
tweet with ``$T$`` put back to the target (a 4-column file is used as is). ``dev`` is the
validation split.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrl_env.data.audio_video import PrepareError
from mmrl_env.data.image_text import ImageTextDataset, TextRecord, first_existing, load_image_text

if TYPE_CHECKING:
    from mmrl_env.data.base import MultimodalDataset

CLASSES = ("negative", "neutral", "positive")
SPLITS = {"train": "train", "dev": "val", "test": "test"}  # file stem -> split
TSV_DIRS = ("twitter2015", ".")
IMAGE_DIRS = ("twitter2015_images", "images")


def _read_tsv(path: Path, split: str, images: str) -> list[TextRecord]:
    if not path.is_file():
        raise PrepareError(f"annotation file {path} not found (expected the TSV "
                           "'index, #1 Label, #2 ImageID, #3 String, #3 String')")
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or (n == 1 and row[0].strip().lower() == "index"):
                continue
            label = row[1].strip() if len(row) > 1 else ""
            if len(row) not in (4, 5) or label not in ("0", "1", "2") or not row[2].strip():
                raise PrepareError(f"{path}:{n}: expected 'index<TAB>label 0-2<TAB>image id<TAB>tweet[<TAB>target]', "
                                   f"got {chr(9).join(row)[:120]!r}")
            text = row[3].replace("$T$", row[4].strip()) if len(row) == 5 else row[3]
            out.append(TextRecord(f"{path.name}:{n}", f"{images}/{row[2].strip()}", text.strip(),
                                  int(label), split))
    return out


def read_records(raw: Path) -> list[TextRecord]:
    folder = first_existing(raw, [f"{d}/train.tsv" for d in TSV_DIRS]).rsplit("/", 1)[0]
    images = first_existing(raw, IMAGE_DIRS, is_dir=True)
    return [r for stem, split in SPLITS.items() for r in _read_tsv(raw / folder / f"{stem}.tsv", split, images)]


TWITTER2015 = ImageTextDataset(
    name="Twitter2015", command="twitter2015", classes=CLASSES, read_records=read_records,
    layout_lines=("<raw>/twitter2015/{train,dev,test}.tsv   (or <raw>/{train,dev,test}.tsv): header "
                  "'index #1 Label #2 ImageID #3 String #3 String', tab-separated",
                  "<raw>/twitter2015_images/<image id>     (or <raw>/images/<image id>)"),
)


def load_twitter2015(root: str | Path | None = None, **kwargs: Any) -> MultimodalDataset:
    """Twitter2015 from a prepared cache; kwargs as :func:`~mmrl_env.data.image_text.load_image_text`
    (device, resident, image_size=224, val_fraction, val_seed, seed, image_encoder, text_encoder)."""
    return load_image_text(TWITTER2015, root, **kwargs)
