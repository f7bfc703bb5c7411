"""Issue 27: every ``--help`` took ~15 s under load. The three training CLIs now parse their
arguments before importing torch, torchvision, SB3, scipy or matplotlib, so ``--help`` and
argparse's own errors (an unknown flag) come at once; the valid names their help lists come from
light lists that must equal the real registries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import mmrl_env
from mmrl_agents.factory import LEARNED
from mmrl_agents.heuristics import HEURISTICS
from mmrl_agents.names import HEURISTIC_NAMES, LEARNED_NAMES
from mmrl_env.data import dataset_names
from mmrl_env.learners import LEARNERS
from mmrl_training.config import DEFAULT_BASELINES, LEARNER_BASELINE

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "stable_baselines3", "scipy", "matplotlib")
CLIS = ("train_agent", "evaluate", "train_mml")


def run_script(cli: str, *argv: str) -> tuple[int, str, list[str]]:
    """Run ``training/<cli>.py argv`` as ``python training/<cli>.py`` does (``__main__``), in a fresh
    interpreter: its exit status, its output, and which heavy packages it had imported."""
    code = ("import runpy, sys\n"
            f"sys.argv = ['training/{cli}.py', *{list(argv)!r}]\n"
            "try:\n"
            f"    runpy.run_path('training/{cli}.py', run_name='__main__')\n"
            "    status = 0\n"
            "except SystemExit as stop:\n"
            "    status = stop.code\n"
            "sys.stdout.flush()\n"
            f"print('HEAVY', status, sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    _, status, heavy = last.split(" ", 2)
    return int(status), out.stdout + out.stderr, ast.literal_eval(heavy)


@pytest.mark.parametrize("cli", CLIS)
def test_help_imports_no_heavy_stack(cli):
    status, text, heavy = run_script(cli, "--help")
    assert status == 0 and "usage:" in text
    assert heavy == []


@pytest.mark.parametrize("cli", CLIS)
def test_unknown_flag_is_refused_before_the_heavy_imports(cli):
    required = ["--policies", "dus-h"] if cli == "evaluate" else []  # else argparse reports the missing one first
    status, text, heavy = run_script(cli, *required, "--no-such-flag")
    assert status == 2 and "unrecognized arguments: --no-such-flag" in text
    assert heavy == []


def test_light_name_lists_equal_the_registries():
    """One source of truth: the light lists are the registries' keys, in order."""
    assert LEARNED_NAMES == tuple(LEARNED)
    assert HEURISTIC_NAMES == tuple(HEURISTICS)
    for method, name in DEFAULT_BASELINES.items():  # evaluate.py's default baselines: heuristics of that method
        assert method in HEURISTICS[name].methods
    assert LEARNER_BASELINE in LEARNERS


def help_of(cli: str) -> str:
    out = subprocess.run([sys.executable, f"training/{cli}.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "", "COLUMNS": "1000"})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_help_lists_every_valid_name():
    """The help texts still list what the user may choose, from the real registries."""
    agent, evaluate, mml = help_of("train_agent"), help_of("evaluate"), help_of("train_mml")
    for text in (agent, evaluate):
        assert all(i in text for i in mmrl_env.env_ids())
        assert all(n in text for n in [*LEARNED, *HEURISTICS])
    assert all(n in evaluate for n in LEARNERS)
    assert all(n in mml for n in [*LEARNERS, *dataset_names()])
