"""Command line: raw data → the memory-mapped cache the loaders read.

    python -m mmrl_env.data.prepare cremad --raw /data/CREMA-D       # -> $MMRL_DATA/cremad
    python -m mmrl_env.data.prepare cremad --raw /data/CREMA-D --out /data/cache/cremad
    python -m mmrl_env.data.prepare kinetics_sounds --raw /data/KS --out /data/cache/ks
    python -m mmrl_env.data.prepare vggsound --raw /data/VGGSound --out /data/cache/vggsound
    python -m mmrl_env.data.prepare twitter2015 --raw /data/twitter --tokenizer /models/bert-base-uncased --out ...
    python -m mmrl_env.data.prepare sarcasm --raw /data/sarcasm --tokenizer /models/bert-base-uncased --out ...
    python -m mmrl_env.data.prepare nvgesture --raw /data/nvGesture --out /data/cache/nvgesture

Without ``--out`` the cache goes to ``$MMRL_DATA/<dataset>`` (default ``~/.cache/mmrl``),
where every loader looks when no root is given. Re-running the same command resumes
(clips already cached are skipped, failed ones are retried). Bad input (missing raw data or
tokenizer, no usable clip, an ``--out`` holding another cache or a damaged one without
``--overwrite``): one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mmrl_env.data.audio_video import AVDataset, PrepareError
from mmrl_env.data.build_cache import coverage, coverage_text, prepare_av
from mmrl_env.data.cache import CacheMismatchError
from mmrl_env.data.cremad import CREMAD
from mmrl_env.data.home import DATA_ENV, SOURCES, dataset_dir
from mmrl_env.data.image_text import ImageTextDataset
from mmrl_env.data.kinetics import KINETICS_SOUNDS, VGGSOUND
from mmrl_env.data.nvgesture import LAYOUT
from mmrl_env.data.sarcasm import SARCASM
from mmrl_env.data.tokens import TokenizerNotFoundError
from mmrl_env.data.twitter2015 import TWITTER2015

PARTIAL = 0.5  # below this fraction of a split's listed clips, prepare fails unless --partial

DATASETS: dict[str, AVDataset] = {d.command: d for d in (CREMAD, KINETICS_SOUNDS, VGGSOUND)}
IMAGE_TEXT: dict[str, ImageTextDataset] = {d.command: d for d in (TWITTER2015, SARCASM)}


def _subparser(sub: argparse._SubParsersAction, command: str, name: str, layout: str, size: int,
               what: str = "frame") -> argparse.ArgumentParser:
    """A sub-command with the options every dataset shares."""
    p = sub.add_parser(command, help=f"{name}; raw layout:\n{layout}",
                       description=f"Cache {name}. Raw data: {SOURCES[command]}. Raw layout:\n{layout}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw", required=True, help="directory of the raw dataset (layout above)")
    p.add_argument("--out", default=None,
                   help=f"cache directory to create or resume (default {dataset_dir(command)}: "
                   f"${DATA_ENV}/{command}, where the loaders look without a root)")
    p.add_argument("--size", type=int, default=size, help=f"stored {what} side in pixels (default {size})")
    p.add_argument("--workers", type=int, default=1, help="decoding processes (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild a cache made with another recipe, or a damaged one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--partial", action="store_true",
                   help=f"accept a cache holding less than {PARTIAL:.0%} of a split's listed clips (exit 0)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmrl_env.data.prepare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="dataset", required=True)
    for command, ds in DATASETS.items():
        p = _subparser(sub, command, ds.name, ds.layout(), 224)
        p.add_argument("--splits", default=None, help=f"split lists: {ds.splits_help} (default: shipped lists)")
        p.add_argument("--frames", type=int, default=3, help="frames stored per clip (evenly spaced; default 3)")
    for command, it in IMAGE_TEXT.items():
        p = _subparser(sub, command, it.name, it.layout(), 224, "image")
        p.add_argument("--tokenizer", required=True,
                       help="LOCAL directory of bert-base-uncased's tokenizer files (vocab.txt / tokenizer.json)")
        p.add_argument("--max-length", type=int, default=it.max_length,
                       help=f"tokens per text, truncated/padded (default {it.max_length})")
    p = _subparser(sub, "nvgesture", "NVGesture", LAYOUT, 224)
    p.add_argument("--frames", type=int, default=16, help="frames per clip, evenly spaced in the gesture (default 16)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out = args.out or str(dataset_dir(args.dataset))
    for flag in ("size", "workers", "frames", "max_length"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            print(f"error: --{flag.replace('_', '-')} must be >= 1, got {value}", file=sys.stderr)
            return 2
    common = dict(size=args.size, overwrite=args.overwrite, progress=not args.quiet, workers=args.workers)
    try:
        if args.dataset in DATASETS:
            manifest = prepare_av(DATASETS[args.dataset], args.raw, args.out, args.splits, args.frames, **common)
        elif args.dataset in IMAGE_TEXT:
            from mmrl_env.data.image_text import prepare_image_text

            manifest = prepare_image_text(IMAGE_TEXT[args.dataset], args.raw, args.out, args.tokenizer, args.max_length,
                               **common)
        else:
            from mmrl_env.data.nvgesture_cache import prepare_nvgesture

            manifest = prepare_nvgesture(args.raw, args.out, args.frames, **common)
    except (PrepareError, CacheMismatchError, TokenizerNotFoundError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    short = [s for s, (done, listed) in coverage(manifest).items() if done < PARTIAL * listed]
    if short and not args.partial:
        ds = DATASETS.get(args.dataset)
        fixes = (["--splits auto (split the clips you have)"] if ds is not None and ds.auto_splits
                 and args.splits != "auto" else ["--splits naming the clips you have"] if ds is not None else [])
        fixes.append("--partial to accept a partial cache")
        print(f"error: the cache in {args.out} holds too few of the listed clips ({coverage_text(manifest)}): "
              f"the raw folder has only part of the dataset. The cache is kept; re-run with "
              f"{' or '.join(fixes)}", file=sys.stderr)
        return 2
    print(f"cache ready: {args.out} ({coverage_text(manifest)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
