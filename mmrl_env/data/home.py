"""The default data home: where ``prepare`` writes a cache and where every loader looks.

``$MMRL_DATA`` (default ``~/.cache/mmrl``) holds one directory per dataset, named after its
prepare sub-command (``cremad``, ``kinetics_sounds``, ...; ``custom`` for ``.npz`` files), so
after one ``python -m mmrl_env.data.prepare cremad --raw <download>`` the env
``DUS-CremaD`` finds its data with no argument. A ``root`` (or the env's ``data_root=``)
always wins. Torch-free: the registry and the CLIs' help read it.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MMRL_DATA"
DEFAULT_HOME = "~/.cache/mmrl"

# prepare sub-command -> where the raw data comes from (mmrl never downloads it)
SOURCES: dict[str, str] = {
    "cremad": "CREMA-D, https://github.com/CheyneyComputerScience/CREMA-D (AudioWAV/ and VideoFlash/ or "
              "Image-01-FPS/; git-lfs)",
    "kinetics_sounds": "the Kinetics-400 clips of the 31 Kinetics-Sounds classes (https://github.com/cvdfoundation/"
                       "kinetics-dataset), listed in mmrl_env/data/splits/kinetics_sounds",
    "vggsound": "VGGSound, https://www.robots.ox.ac.uk/~vgg/data/vggsound/ (vggsound.csv and the YouTube clips)",
    "twitter2015": "Twitter-2015 as distributed with TomBERT, https://github.com/jefferyYu/TomBERT "
                   "(TSVs + twitter2015_images)",
    "sarcasm": "the multimodal sarcasm set, https://github.com/headacheboy/data-of-multimodal-sarcasm-detection",
    "nvgesture": "NVIDIA Dynamic Hand Gesture (nvGesture), https://research.nvidia.com/publication/"
                 "2016-06_online-detection-and-classification-dynamic-hand-gestures-recurrent-3d-convolutional",
}


def data_home() -> Path:
    """``$MMRL_DATA``, else ``~/.cache/mmrl`` (user-expanded; not created here)."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_HOME).expanduser()


def dataset_dir(command: str) -> Path:
    """The default directory of one dataset's cache: ``<data home>/<prepare sub-command>``."""
    return data_home() / command


def resolve_root(root: str | Path | None, command: str) -> Path:
    """The directory a loader reads: ``root`` when given, else the data home's."""
    return Path(root).expanduser() if root is not None else dataset_dir(command)


# how a user points a loader at data outside the data home (every "data not found" message says it)
ELSEWHERE = "data_root=<dir> (CLI: --env-kwargs data_root=<dir>)"


def prepare_command(command: str, out: str | Path | None = None, options: str = "") -> str:
    """The prepare command line of sub-command ``command`` (``options``: its extra required
    flags); without ``out`` it writes to the data home."""
    where = f" --out {out}" if out is not None else ""
    return f"python -m mmrl_env.data.prepare {command} --raw <raw>{options}{where}"


def where_text(root: Path, given: bool) -> str:
    """How ``root`` was chosen, for error messages."""
    if given:
        return f"{root} (given as root / data_root)"
    how = f"${DATA_ENV}={os.environ[DATA_ENV]}" if os.environ.get(DATA_ENV) else f"${DATA_ENV} unset, so {DEFAULT_HOME}"
    return f"{root} (the default data home: {how})"


def missing_data_message(name: str, command: str, root: Path, given: bool, prepare: str, layout: str,
                         problem: str = "which holds no prepared cache") -> str:
    """The error of a loader whose data is not there: where it looked, the one prepare
    command that fixes it, where the raw data comes from, and how to point elsewhere."""
    source = SOURCES.get(command)
    lines = [f"{name} data not found: looked in {where_text(root, given)}, {problem}.",
             "Prepare it once with:", f"    {prepare}"]
    if source:
        lines.append(f"where <raw> is the downloaded raw data: {source}; expected raw layout:")
    else:
        lines.append("expected raw layout:")
    lines += [layout, f"or use a cache elsewhere: {ELSEWHERE}, or set ${DATA_ENV} to the folder holding {command}/."]
    return "\n".join(lines)
