"""Dataset names -> loaders, resolved lazily so that listing datasets imports no torch.

Users add their own with :func:`register_dataset`; every name here gets ``DUS-<name>`` and
``BSS-<name>`` environment ids when registered before ``import mmrl_env``
(or call :func:`mmrl_env.register_envs` again afterwards).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mmrl_env.kwargs import unknown_kwargs_message
from mmrl_env.resolve import resolve

# name -> "module:function" (lazy) or a callable. ``None`` = loader not written yet.
_LOADERS: dict[str, str | Callable[..., Any] | None] = {
    "Synthetic": "mmrl_env.data.synthetic:load_synthetic",
    "SyntheticMix": "mmrl_env.data.synthetic_mix:load_synthetic_mix",
    "MFeat": "mmrl_env.data.mfeat:load_mfeat",
    "CremaD": "mmrl_env.data.cremad:load_cremad",
    "KineticsSounds": "mmrl_env.data.kinetics:load_kinetics_sounds",
    "VGGSound": "mmrl_env.data.kinetics:load_vggsound",
    "Twitter2015": "mmrl_env.data.twitter2015:load_twitter2015",
    "Sarcasm": "mmrl_env.data.sarcasm:load_sarcasm",
    "NVGesture": "mmrl_env.data.nvgesture:load_nvgesture",
    "Custom": "mmrl_env.data.npz:load_npz",
}


def dataset_names() -> list[str]:
    return list(_LOADERS)


def register_dataset(name: str, loader: str | Callable[..., Any]) -> None:
    """Register ``loader(**kwargs) -> MultimodalDataset`` under ``name``."""
    if not name.isidentifier():
        raise ValueError(f"dataset name must be an identifier (used in env ids), got {name!r}")
    _LOADERS[name] = loader


def load_dataset(name: str, **kwargs: Any) -> Any:
    """Build the :class:`~mmrl_env.data.base.MultimodalDataset` called ``name``; a setting its
    loader does not take is refused with the valid ones (and the closest match)."""
    loader = loader_of(name)
    params = inspect.signature(loader).parameters.values()
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        valid = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        message = unknown_kwargs_message(kwargs, valid, "dataset setting(s)", name)
        if message:
            raise ValueError(message)
    return loader(**kwargs)


def loader_of(name: str) -> Callable[..., Any]:
    """The loader function registered as ``name``."""
    if name not in _LOADERS:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(_LOADERS)}")
    loader = _LOADERS[name]
    if loader is None:
        raise NotImplementedError(
            f"dataset {name!r} has an environment id but no loader yet in this version of mmrl. "
            f"Use 'Synthetic', or register your own with mmrl_env.data.register_dataset()."
        )
    if isinstance(loader, str):
        loader = resolve(loader)
    return loader
