"""Torch CPU threads for the Synthetic inner model: one DUS-Synthetic episode (the default
env, the uniform policy) timed with 1 and with N threads, on a quiet machine and with one
competing busy process. Decides ``train_agent.py``/``evaluate.py``/``train_mml.py``'s
``--threads`` default. Each timing runs in a fresh process; configurations alternate, the
median of ``--repeats`` is reported, and ratios (not absolute times) are what to quote.

    python bench/threads.py --repeats 3 --threads 1 2
    python bench/threads.py --repeats 3 --entry-point     # gym.make as a user calls it: before / after

``--entry-point`` compares plain ``gym.make`` (no ``torch.set_num_threads`` anywhere) with the
env setting ``threads=0`` (torch's default: what ``gym.make``, ``make_vec`` and the zoo ran
before issue 27) against the default ``threads="auto"`` (one thread for the inner training).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from timing import alternate

ROOT = Path(__file__).resolve().parent.parent
EPISODE = """
import time, torch, gymnasium as gym, numpy as np, mmrl_env
{setup}
env = gym.make("DUS-Synthetic", device="cpu"{kwargs})
env.reset(seed=0)
start = time.perf_counter()
done = False
while not done:
    _, _, term, trunc, _ = env.step(np.zeros(env.action_space.shape, np.float32))
    done = term or trunc
print(time.perf_counter() - start)
"""
SPIN = "while True: pass"


def episode_seconds(threads: int | str) -> float:
    """One episode with ``torch.set_num_threads(threads)`` (an int), or with the env setting
    ``threads`` (a string: ``"env:0"``, ``"env:auto"``) and torch's default otherwise."""
    if isinstance(threads, str):
        setting = threads.split(":", 1)[1]
        code = EPISODE.format(setup="", kwargs=f", threads={setting if setting.isdigit() else repr(setting)}")
    else:
        code = EPISODE.format(setup=f"torch.set_num_threads({threads})", kwargs="")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    return float(out.stdout.strip().splitlines()[-1])


def measure(threads: list, repeats: int) -> dict:
    times = alternate({str(t): partial(episode_seconds, t) for t in threads}, repeats)
    return {t: statistics.median(times[str(t)]) for t in threads}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare (default 1 2)")
    p.add_argument("--repeats", type=int, default=3, help="episodes per configuration (median; default 3)")
    p.add_argument("--entry-point", action="store_true",
                   help="gym.make with threads=0 (torch's default, as before) vs threads='auto' (the default)")
    a = p.parse_args()
    if a.entry_point:
        a.threads = ["env:0", "env:auto"]
    rows = [("quiet", measure(a.threads, a.repeats))]
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])  # one competing CPU-bound process
    try:
        time.sleep(0.5)
        rows.append(("1 busy process", measure(a.threads, a.repeats)))
    finally:
        spinner.kill()
        spinner.wait()
    base = a.threads[0]
    print(f"| machine | {' | '.join(f'{t} thread(s) [s]' for t in a.threads)} | "
          f"{' | '.join(f'{t} / {base}' for t in a.threads[1:])} |")
    print("|---|" + "---:|" * (2 * len(a.threads) - 1))
    for name, med in rows:
        print(f"| {name} | {' | '.join(f'{med[t]:.2f}' for t in a.threads)} | "
              f"{' | '.join(f'{med[t] / med[base]:.2f}' for t in a.threads[1:])} |")


if __name__ == "__main__":
    main()
