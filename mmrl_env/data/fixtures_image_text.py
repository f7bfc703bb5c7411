"""Tiny Twitter2015 / Sarcasm datasets in their real formats, plus a tiny local BERT tokenizer.

Images are coloured by label and the texts use label-specific words, so a model can learn
from either modality; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from mmrl_env.data.fixtures import _image
from mmrl_env.extras import require

WORDS = ("good", "great", "fine", "okay", "bad", "awful", "the", "a", "is", "day", "movie", "really")
# A BertConfig small enough for CPU tests (vocab_size must cover the tokenizer's vocabulary).
TINY_BERT = {"vocab_size": 5 + len(WORDS), "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 32, "max_position_embeddings": 64}


def write_tokenizer(folder: Path) -> Path:
    """A WordPiece vocabulary of the special tokens + ``WORDS``, saved as a transformers tokenizer."""
    BertTokenizerFast = require("transformers", "tokenizer fixtures").BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS)) + "\n")
    BertTokenizerFast(str(vocab)).save_pretrained(str(folder))
    return folder


def _text(label: int, n: int) -> str:
    return f"the {WORDS[label % 6]} {WORDS[9 + n % 3]} is really {WORDS[(label % 6 + 1) % 6]}"


def _write_image(path: Path, label: int, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_image(label, 0, size)).save(path, quality=90)


def write_twitter2015(raw: Path, per_split: dict[str, int], size: int = 48) -> None:
    """``twitter2015/{train,dev,test}.tsv`` + ``twitter2015_images/<id>.jpg``, labels round-robin."""
    header = "index\t#1 Label\t#2 ImageID\t#3 String\t#3 String\n"
    for split, count in per_split.items():
        lines = []
        for n in range(count):
            label, image = n % 3, f"{split}_{n}.jpg"
            _write_image(raw / "twitter2015_images" / image, label, size)
            lines.append(f"{n}\t{label}\t{image}\tRT @user : $T$ {_text(label, n)}\tthe movie\n")
        (raw / "twitter2015").mkdir(parents=True, exist_ok=True)
        (raw / "twitter2015" / f"{split}.tsv").write_text(header + "".join(lines))


def write_sarcasm(raw: Path, per_split: dict[str, int], size: int = 48, json_lines: bool = False) -> None:
    """``{train,valid,test}.json`` records ``{image, text, label}`` + ``images/<id>.jpg``."""
    for split, count in per_split.items():
        records = []
        for n in range(count):
            label, image = n % 2, f"{split}{n}"
            _write_image(raw / "images" / f"{image}.jpg", label, size)
            records.append({"image": image, "text": _text(label, n), "label": label})
        body = "".join(json.dumps(r) + "\n" for r in records) if json_lines else json.dumps(records)
        (raw / f"{split}.{'jsonl' if json_lines else 'json'}").write_text(body)
