"""Reading a local pretrained state dict (mmrl never downloads weights): the file is a user's,
so it is bounded like every archive (``mmrl_env.bounded_input.check_zip``), read without
unpickling code (``weights_only=True``) and must hold a mapping of tensors."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from mmrl_env.bounded_input import check_zip


def read_state_dict(path: Path, what: str) -> dict[str, Any]:
    """The state dict in ``path`` (``what``: e.g. ``resnet18 weights``), or a ``ValueError`` naming it."""
    if zipfile.is_zipfile(path):  # torch's format; a legacy pickle is no larger than the file
        check_zip(path, what)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError) as err:
        raise ValueError(f"{what} {path} is not a readable weights-only state dict "
                         f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from err
    if not isinstance(state, dict):
        raise ValueError(f"{what} {path} holds a {type(state).__name__}, not a state dict (a mapping of tensors)")
    return state
