"""Text → fixed-length BERT token ids + attention mask, tokenised once at prepare time.

Tokenising per batch would put Python string work on the hot path; fixed-length int64
arrays live in the memmap cache beside the images instead. The tokenizer is read from a
local directory only (mmrl never downloads anything).

Stored and served layout: int64 ``(N, 2, L)``, ``[:, 0]`` = token ids, ``[:, 1]`` =
attention mask (1 = real token, 0 = padding) — what the ``bert`` encoder takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrl_env.extras import require

TOKENIZER_HELP = (
    "put the files of bert-base-uncased's tokenizer (vocab.txt, plus tokenizer.json / tokenizer_config.json "
    "if you have them; a full snapshot of the model directory also holds the weights the 'bert' encoder "
    "needs) in a local directory, e.g. with `hf download bert-base-uncased --local-dir DIR` on a "
    "machine with network access, and pass --tokenizer DIR"
)


class TokenizerNotFoundError(FileNotFoundError):
    """No usable tokenizer at the given local path."""


def load_tokenizer(path: str | Path | None) -> Any:
    """A ``transformers`` tokenizer from the local directory ``path`` (never the network)."""
    transformers = require("transformers", "BERT tokenisation (Twitter2015, Sarcasm)")
    AutoTokenizer, BertTokenizerFast = transformers.AutoTokenizer, transformers.BertTokenizerFast

    if path is None or not Path(path).expanduser().is_dir():
        raise TokenizerNotFoundError(f"tokenizer directory {path} not found: {TOKENIZER_HELP}")
    folder = Path(path).expanduser()
    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        if (folder / "vocab.txt").is_file():  # a bare WordPiece vocabulary is enough for BERT
            return BertTokenizerFast(str(folder / "vocab.txt"))
        why = " ".join(str(err).split())[:200]
        raise TokenizerNotFoundError(f"{path} holds no usable tokenizer ({why}): {TOKENIZER_HELP}") from err


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> np.ndarray:
    """int64 (N, 2, max_length): ids and attention mask, truncated/padded to ``max_length``."""
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=max_length,
                    return_attention_mask=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int64).reshape(len(texts), max_length)
    mask = np.asarray(enc["attention_mask"], dtype=np.int64).reshape(len(texts), max_length)
    return np.stack([ids, mask], axis=1)
