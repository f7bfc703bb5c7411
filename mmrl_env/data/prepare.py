"""Command line: raw audio-video data → the memory-mapped cache the loaders read.

    python -m mmrl_env.data.prepare cremad --raw /data/CREMA-D --out /data/cache/cremad
    python -m mmrl_env.data.prepare kinetics_sounds --raw /data/KS --out /data/cache/ks
    python -m mmrl_env.data.prepare vggsound --raw /data/VGGSound --out /data/cache/vggsound

Re-running the same command resumes (clips already cached are skipped, failed ones are
retried). Exit status 1 when the raw data is missing or no clip is usable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mmrl_env.data.audio_video import AVDataset, PrepareError
from mmrl_env.data.build_cache import prepare_av
from mmrl_env.data.cache import CacheMismatchError
from mmrl_env.data.cremad import CREMAD
from mmrl_env.data.kinetics import KINETICS_SOUNDS, VGGSOUND

DATASETS: dict[str, AVDataset] = {d.command: d for d in (CREMAD, KINETICS_SOUNDS, VGGSOUND)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmrl_env.data.prepare", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="dataset", required=True)
    for command, ds in DATASETS.items():
        p = sub.add_parser(command, help=f"{ds.name}; raw layout:\n{ds.layout()}",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description=f"Cache {ds.name}. Raw layout:\n{ds.layout()}")
        p.add_argument("--raw", required=True, help="directory of the raw dataset (layout above)")
        p.add_argument("--out", required=True, help="cache directory to create or resume")
        p.add_argument("--splits", default=None, help=f"split lists: {ds.splits_help} (default: shipped lists)")
        p.add_argument("--frames", type=int, default=3, help="frames stored per clip (evenly spaced; default 3)")
        p.add_argument("--size", type=int, default=224, help="stored frame side in pixels (default 224)")
        p.add_argument("--workers", type=int, default=1, help="decoding processes (default 1)")
        p.add_argument("--overwrite", action="store_true", help="rebuild a cache made with another recipe")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        prepare_av(DATASETS[args.dataset], args.raw, args.out, args.splits, args.frames, args.size,
                   overwrite=args.overwrite, progress=not args.quiet, workers=args.workers)
    except (PrepareError, CacheMismatchError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
