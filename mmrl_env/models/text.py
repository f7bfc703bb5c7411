"""BERT text encoder (``transformers``), weights from local files only.

Input: int64 (B, 2, L) — ``[:, 0]`` token ids, ``[:, 1]`` attention mask — as the
image-text splits serve it (``mmrl_env.data.tokens``), so the trainer can treat text like
any other tensor modality. Output: the final hidden state of ``[CLS]`` (``out_dim`` =
hidden size, 768 for bert-base), the sentence feature the image-text references fuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from mmrl_env.extras import require
from mmrl_env.models.base import Encoder

DEFAULT_BERT = "bert-base-uncased"
BERT_HELP = (
    "mmrl never downloads weights: put bert-base-uncased's files (config.json and model.safetensors or "
    "pytorch_model.bin, plus vocab.txt for the tokenizer) in a local directory, e.g. with "
    "`hf download bert-base-uncased --local-dir DIR` on a machine with network access, and "
    "pass path=DIR (image-text datasets: dataset_kwargs={'text_encoder': {'path': DIR}}, or prepare with "
    "--tokenizer DIR, which the loader then also uses for the weights); pretrained=False trains from a random init"
)


class BertWeightsNotFoundError(FileNotFoundError):
    """No local BERT weights where they were asked for."""


def find_bert(path: str | Path | None) -> str:
    """The local directory (or cached hub name) to load BERT from; raises with the fix if none."""
    if path is not None:
        p = Path(path).expanduser()
        if (p / "config.json").is_file():
            return str(p)
        raise BertWeightsNotFoundError(f"no BERT model in {p} (config.json missing). {BERT_HELP}")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(DEFAULT_BERT, "config.json"), str):
        return DEFAULT_BERT
    raise BertWeightsNotFoundError(f"{DEFAULT_BERT} is not in the local Hugging Face cache. {BERT_HELP}")


class BertEncoder(Encoder):
    """``transformers.BertModel``; ``out_dim`` = its hidden size.

    ``path``: local model directory (default: bert-base-uncased from the local HF cache).
    ``pretrained=False`` builds a random BERT from ``BertConfig(**config)`` (tests use a tiny
    one); ``config`` otherwise overrides loaded config fields (e.g. dropout).
    """

    def __init__(self, path: str | Path | None = None, pretrained: bool = True,
                 config: dict[str, Any] | None = None) -> None:
        super().__init__()
        transformers = require("transformers", "the BERT text encoder")
        BertConfig, BertModel = transformers.BertConfig, transformers.BertModel

        if pretrained:
            source = find_bert(path)
            try:
                self.bert = BertModel.from_pretrained(source, local_files_only=True, add_pooling_layer=False,
                                                      **(config or {}))
            except OSError as err:
                raise BertWeightsNotFoundError(f"cannot load BERT weights from {source}: {err}. {BERT_HELP}") from err
        else:
            self.bert = BertModel(BertConfig(**(config or {})), add_pooling_layer=False)
        self.out_dim = int(self.bert.config.hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[1] != 2:
            raise ValueError(f"bert expects int64 (B, 2, L) token ids + attention mask, got {tuple(x.shape)}")
        if x.shape[2] > self.bert.config.max_position_embeddings:
            raise ValueError(f"texts of {x.shape[2]} tokens, but this BERT takes at most "
                             f"{self.bert.config.max_position_embeddings}: prepare with a smaller --max-length")
        out = self.bert(input_ids=x[:, 0].long(), attention_mask=x[:, 1].long())
        return out.last_hidden_state[:, 0]
