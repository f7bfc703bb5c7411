"""Disk, peak RSS and wall per env step vs the number of CREMA-D clips present (CPU).

For each clip count the benchmark writes a CREMA-D-shaped raw folder (``fixtures``: wav +
1-fps jpgs), prepares it under the *shipped* 7,442-clip split lists (``--partial``, as a
user with a subset of the data would) and then, in a fresh process with one torch thread,
makes ``DUS-CremaD`` on that cache and takes ``--steps`` env steps with uniform actions.
Reported: the cache's apparent size on disk, the process's peak RSS after ``gym.make`` +
``reset`` (data loaded) and after the steps (training), and the wall per step. The
``--settings`` name env settings (the default 224 px with B = 64, and the CPU smoke-test
setting ``image_size=64 batch_size=8``), so the table shows what memory follows: the clips
(disk, loading) or the model's batch (training).

    python bench/cache_memory.py --clips 13 52 208 --steps 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"smoke": {"batch_size": 8, "dataset_kwargs": {"image_size": 64}},
            "default": {}}
STEP = """
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(1)
import gymnasium as gym, mmrl_env
root, steps, kwargs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
env = gym.make("DUS-CremaD", data_root=root, epochs=steps, device="cpu", **kwargs)
env.reset(seed=0)
loaded = rss()
start = time.perf_counter()
for _ in range(steps):
    env.step(np.zeros(env.action_space.shape, np.float32))
print(json.dumps({"loaded_mb": loaded, "peak_mb": rss(), "step_s": (time.perf_counter() - start) / steps}))
"""


def prepare(base: Path, clips: int) -> int:
    """A raw folder of ``clips`` train clips (+ a quarter as many test clips), prepared under
    the shipped lists; returns the cache's apparent size in bytes."""
    from mmrl_env.data.fixtures import real_cremad_rows, write_cremad

    rows = real_cremad_rows({"train": clips, "test": max(2, clips // 4)})
    write_cremad(base / "raw", rows["train"] + rows["test"])
    # the user's prepare command, run as a command (bench/ imports no CLI module); its report goes to stderr
    code = subprocess.run([sys.executable, "-m", "mmrl_env.data.prepare", "cremad", "--raw", str(base / "raw"), "--out",
                           str(base / "cache"), "--quiet", "--partial"], cwd=ROOT, stdout=sys.stderr).returncode
    if code != 0:
        raise SystemExit(f"prepare failed with status {code}")
    return sum(f.stat().st_size for f in (base / "cache").iterdir())


def step(cache: Path, steps: int, kwargs: dict) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", STEP, str(cache), str(steps), json.dumps(kwargs)], cwd=ROOT,
                         check=True, capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT), "PATH": "", "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[13, 52, 208])
    parser.add_argument("--steps", type=int, default=2, help="env steps timed (each one epoch)")
    parser.add_argument("--settings", nargs="+", default=["smoke"], choices=sorted(SETTINGS))
    args = parser.parse_args()
    print("| clips present (train + test) | settings | cache on disk [MB] | RSS after load [MB] "
          "| peak RSS [MB] | wall per step [s] |")
    print("|---:|---|---:|---:|---:|---:|")
    for clips in args.clips:
        with tempfile.TemporaryDirectory() as tmp:
            size = prepare(Path(tmp), clips)
            for name in args.settings:
                r = step(Path(tmp) / "cache", args.steps, SETTINGS[name])
                print(f"| {clips} + {max(2, clips // 4)} | {name} `{json.dumps(SETTINGS[name])}` | "
                      f"{size / 2**20:.1f} | {r['loaded_mb']:.0f} | {r['peak_mb']:.0f} | {r['step_s']:.2f} |",
                      flush=True)


if __name__ == "__main__":
    main()
