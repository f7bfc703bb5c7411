"""A tiny NVGesture in the release's layout: list files + sk_color.avi / sk_depth.avi per clip."""

from __future__ import annotations

from pathlib import Path

from mmrl_env.data.fixtures import write_video
from mmrl_env.data.nvgesture import LISTS


def nvgesture_line(clip: str, label: int, start: int, end: int) -> str:
    """A list line as in the release (``label`` 0-based here, written 1-based)."""
    return (f"path:./Video_data/{clip} depth:sk_depth:{start}:{end} color:sk_color:{start}:{end} "
            f"duo_left:duo_left:{start}:{end} label:{label + 1}")


def write_nvgesture(raw: Path, per_split: dict[str, int], seconds: int = 3, fps: int = 4, size: int = 48,
                    classes: int = 25) -> list[str]:
    """``per_split`` clips of split train/test, labels round-robin over the first ``classes``;
    returns the clip ids."""
    (raw / "nvgesture_arch").mkdir(parents=True, exist_ok=True)
    clips = []
    for split, count in per_split.items():
        lines = []
        for n in range(count):
            label = n % classes
            clip = f"class_{label + 1:02d}/subject{n}_{split}_r0"
            folder = raw / "nvgesture_arch" / "Video_data" / clip
            for offset, sensor in enumerate(("sk_color", "sk_depth")):
                write_video(folder / f"{sensor}.avi", label + offset, seconds=seconds, fps=fps, size=size)
            lines.append(nvgesture_line(clip, label, 1, seconds * fps) + "\n")
            clips.append(clip)
        (raw / "nvgesture_arch" / LISTS[split]).write_text("".join(lines))
    return clips
