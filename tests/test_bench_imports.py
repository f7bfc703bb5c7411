"""bench/: every name a benchmark script imports from this project exists (a module move shows
here, not when someone runs the benchmark), and no script imports a CLI module (bench/ runs the
library, issue 23)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("mmrl_env", "mmrl_agents", "mmrl_training")
CLIS = {"mmrl_training.train_agent", "mmrl_training.evaluate", "mmrl_training.train_mml", "mmrl_training.pretrain",
        "mmrl_training.agent_training", "mmrl_training.seed_comparison", "mmrl_env.data.prepare"}
SCRIPTS = sorted((ROOT / "bench").glob("*.py"))


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import of ours in ``path``, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OURS:
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] in OURS]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bench_imports_resolve_and_avoid_the_clis(script: Path) -> None:
    problems = []
    for module, names, line in imports_of(script):
        if module in CLIS:
            problems.append(f"line {line}: imports the CLI module {module}")
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            problems.append(f"line {line}: {module}: {err}")
            continue
        for name in names:
            if not hasattr(mod, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    problems.append(f"line {line}: {module} has no {name}")
    assert not problems, f"{script.name}: " + "; ".join(problems)
