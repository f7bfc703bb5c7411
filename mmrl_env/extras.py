"""Optional dependencies: the real-data stacks are extras, so the Synthetic quick start
installs none of them (``pip install -e .``). A missing one raises an error that names the
extra to install, at the point it is first needed, not at import time.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# import name -> (extra, distribution)
EXTRAS: dict[str, tuple[str, str]] = {
    "soundfile": ("audio-video", "soundfile"),
    "av": ("audio-video", "av"),
    "cv2": ("audio-video", "opencv-python-headless"),
    "transformers": ("text", "transformers"),
    "ray": ("ray", "ray"),  # inner runs in Ray actors (mmrl_env.envs.ray_vector), not a data stack
}


class MissingExtraError(ModuleNotFoundError):
    """An optional package is not installed; the message names the extra that brings it."""


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (a key of :data:`EXTRAS`), or fail saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra, dist = EXTRAS[module]
        raise MissingExtraError(f"{purpose} needs the optional package {dist!r}, which is not installed: "
                                f"pip install 'mmrl[{extra}]' (in a checkout: pip install -e '.[{extra}]'; "
                                "'.[all]' brings every real-data stack)", name=module) from err
