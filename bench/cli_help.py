"""Wall time of each CLI's ``--help`` (a fresh interpreter each time), here and in an older tree.

    git archive 525ae3f | tar -x -C /tmp/before      # a tree from before the lazy imports
    python bench/cli_help.py --before /tmp/before --repeats 3

Rounds alternate (before, after) so that both see the same machine load; each CLI's median per
tree and their ratio are printed. Without ``--before`` only this tree is timed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from timing import alternate

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"train_agent.py": ["training/train_agent.py", "--help"], "evaluate.py": ["training/evaluate.py", "--help"],
            "train_mml.py": ["training/train_mml.py", "--help"],
            "prepare": ["-m", "mmrl_env.data.prepare", "--help"]}


def timer(tree: Path, argv: list[str]) -> float:
    """Seconds of ``python argv`` run in ``tree`` (its own code first on the path)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], cwd=tree, env={"PYTHONPATH": str(tree), "PATH": ""}, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", type=Path, default=None, help="an older source tree to compare with")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    trees = ({"before": a.before.resolve()} if a.before else {}) | {"after": ROOT}
    print("| command | " + " | ".join(f"{t} (s, median)" for t in trees) + (" | ratio |" if a.before else ""))
    for name, argv in COMMANDS.items():
        times = alternate({t: (lambda tree=tree, argv=argv: timer(tree, argv)) for t, tree in trees.items()},
                          a.repeats)
        med = {t: statistics.median(times[t]) for t in trees}
        ratio = f" | {med['before'] / med['after']:.1f}× |" if a.before else ""
        print(f"| `{name} --help` | " + " | ".join(f"{med[t]:.2f}" for t in trees) + ratio)


if __name__ == "__main__":
    main()
