"""The docs a newcomer reads: README's shape, its set-up commands as CI runs them, and links that resolve.

Every relative link in README.md, BENCHMARKS.md and docs/*.md must point to a file of the
repository, and a ``#fragment`` to a heading of that file (GitHub's anchor rules), so that moving
a section breaks a test instead of a reader's click.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code (a link there is not a link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return "\n".join(lines)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped (but ``-`` and ``_``), spaces to ``-``;
    a repeated heading gets ``-1``, ``-2``, ..."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path.read_text(encoding="utf-8")))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]  # http:, https:, mailto: are not checked


def test_anchor_rules() -> None:
    """The slug rules the link check relies on, on headings of the kind these docs use."""
    page = ROOT / "docs" / "cli.md"
    assert "evaluatepy-comparing-policies-on-the-same-seeds" in anchors(page)
    assert "checkpoints-and---resume" in anchors(page)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    links = relative_links(doc)
    broken = []
    for target in links:
        file_part, _, fragment = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading '#{fragment}' in {dest.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_docs_folder_is_linked_from_readme() -> None:
    """Every page in docs/ is reachable from the README (directly or through another page)."""
    reached, todo = set(), [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached or page.suffix != ".md" or not page.exists():
            continue
        reached.add(page)
        todo += [(page.parent / t.partition("#")[0]).resolve() for t in relative_links(page) if t.partition("#")[0]]
    orphans = [p.name for p in (ROOT / "docs").glob("*.md") if p.resolve() not in reached]
    assert not orphans, f"docs pages no link leads to: {orphans}"


def test_readme_shape() -> None:
    """The issue's README: at most 250 lines, the two set-up commands first, one env-step diagram,
    then the sections in this order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)
    lang, first = blocks[0]
    assert first.splitlines() == ['pip install -e . && python training/train_agent.py --env DUS-Synthetic',
                                  'pip install -e ".[dev]" && pytest']
    assert [lang for lang, _ in blocks].count("mermaid") == 1
    headings = re.findall(r"^## (.*)$", text, flags=re.M)
    order = ["One environment step", "Use it", "The environments", "Datasets",
             "Add a learner, a dataset, a heuristic", "Which policy should I use?", "Layout", "Documentation"]
    assert headings == order


def test_ci_runs_the_readme_set_up_commands() -> None:
    """.ci/run installs and tests with the README's second command, word for word."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert 'pip install -e ".[dev]"' in ci and "pytest" in ci


def test_benchmarks_open_with_todays_numbers() -> None:
    """BENCHMARKS.md starts with one table of headline numbers, each row with a command and a date."""
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    first = re.search(r"^## (.*)$", text, flags=re.M)
    assert first and first.group(1) == "Today's numbers"
    section = text[first.end():text.index("\n## ", first.end())]
    rows = [r for r in section.splitlines() if r.startswith("|") and not r.startswith("|---")][1:]
    assert len(rows) >= 10
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.search(r"`(python|pytest) [^`]+`", cells[2]), f"no command in: {row}"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[3]), f"no date in: {row}"


TOP_DIRS = ("mmrl_env/", "agents/", "training/", "configs/", "bench/", "tests/", "docs/", ".ci/")


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name not in ("BENCHMARKS.md", "benchmarks-history.md")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_paths_named_in_the_docs_exist(doc: Path) -> None:
    """A repository path in backticks (``mmrl_env/learners/base.py``, ``configs/paper/``) names a file or
    folder that exists, so a module move shows up here. BENCHMARKS.md and its history are left out: they
    record how each figure was produced, with scripts and classes removed since."""
    missing = []
    for token in re.findall(r"`([^`\s]+)`", doc.read_text(encoding="utf-8")):
        path = token.split("::")[0].rstrip(".,;:")
        if path.startswith(TOP_DIRS) and not any(c in path for c in "<*{"):
            if not (ROOT / path).exists():
                missing.append(token)
    assert not missing, f"{doc.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_extension_guide_names_what_the_code_has() -> None:
    """README's "Add a learner, a dataset, a heuristic" names the registries and base classes a newcomer
    touches; each exists where the guide says."""
    import mmrl_env
    from mmrl_agents.heuristics import HEURISTICS
    from mmrl_agents.heuristics.base import HeuristicPolicy
    from mmrl_agents.names import HEURISTIC_NAMES
    from mmrl_env.data import register_dataset
    from mmrl_env.data.base import ModalitySpec, MultimodalDataset
    from mmrl_env.envs.control import ControlSpec
    from mmrl_env.learners import LEARNERS
    from mmrl_env.learners.base import StackedLearner

    guide = (ROOT / "README.md").read_text(encoding="utf-8").split("## Add a learner, a dataset, a heuristic")[1]
    guide = guide.split("\n## ")[0]
    for name in ("StackedLearner", "map_runs", "train_step", "predict", "LEARNERS", "MultimodalDataset",
                 "ModalitySpec", "register_dataset", "register_envs", "_LOADERS", "HeuristicPolicy", "act(obs)",
                 "ControlSpec", "HEURISTICS", "HEURISTIC_NAMES"):
        assert name in guide, name
    assert hasattr(StackedLearner, "map_runs")
    for path in LEARNERS.values():
        cls = _resolve(path)
        assert issubclass(cls, StackedLearner) and callable(cls.train_step) and callable(cls.predict), path
    for cls in HEURISTICS.values():
        assert issubclass(cls, HeuristicPolicy) and cls.act is not HeuristicPolicy.act, cls
    assert tuple(HEURISTICS) == HEURISTIC_NAMES
    assert callable(register_dataset) and callable(mmrl_env.register_envs)
    assert MultimodalDataset.__dataclass_fields__.keys() >= {"modalities", "num_classes", "train", "val", "test"}
    assert ModalitySpec.__dataclass_fields__.keys() >= {"name", "encoder"}
    assert ControlSpec.__dataclass_fields__.keys() >= {"layout", "action_map"}
    # the dataset recipe itself (register_dataset, register_envs, gym.make) runs in tests/test_registration.py


def _resolve(path: str) -> type:
    from mmrl_env.resolve import resolve

    return resolve(path)


# installed only by a wheel (setup.py ships configs/ under this name), not importable from a source tree
WHEEL_ONLY = {"mmrl_training.configs"}


@pytest.mark.parametrize("doc", [d for d in DOCS if d.name not in ("BENCHMARKS.md", "benchmarks-history.md")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_dotted_names_in_the_docs_resolve(doc: Path) -> None:
    """``mmrl_training.stats.MIN_SEEDS``, ``mmrl_env.register_envs``: a dotted name of ours in backticks imports,
    so a moved module or a renamed function shows up here."""
    import importlib

    unresolved = []
    for name in sorted(set(re.findall(r"`((?:mmrl_env|agents|training)(?:\.\w+)+)", doc.read_text(encoding="utf-8")))):
        if name in WHEEL_ONLY:
            continue
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for attr in parts[cut:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                unresolved.append(name)
            break
        else:
            unresolved.append(name)
    assert not unresolved, f"{doc.relative_to(ROOT)} names what the code does not have: {unresolved}"
