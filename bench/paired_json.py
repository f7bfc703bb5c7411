"""Paired difference of one row between two ``learners_synthetic.py --json`` files (same seeds).

    python bench/paired_json.py before.json after.json "boosting (ω one-hot)" [--key fused_acc]

Prints the per-seed mean difference (after − before) of ``--key`` in points with its 95 %
t-interval: how a code change moved a row, on common seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("row")
    p.add_argument("--key", default="fused_acc")
    a = p.parse_args()
    before, after = (json.loads(Path(f).read_text()) for f in (a.before, a.after))
    if before["seeds"] != after["seeds"]:
        raise SystemExit(f"the files cover different seeds: {before['seeds']} vs {after['seeds']}")
    d = 100 * (np.array([r[a.key] for r in after["rows"][a.row]]) - np.array([r[a.key] for r in before["rows"][a.row]]))
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    print(f"{a.row}: {a.key} after − before = {d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] points over {len(d)} seeds")


if __name__ == "__main__":
    main()
