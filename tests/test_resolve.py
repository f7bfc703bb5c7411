"""The one ``"package.module:Name"`` resolver."""

from __future__ import annotations

import os.path
import sys

import pytest

from mmrl_env.resolve import resolve


def test_good_spec_returns_the_named_object() -> None:
    assert resolve("os.path:join") is os.path.join
    assert resolve("os:path.join") is os.path.join  # a dotted attribute path


def test_resolving_imports_the_module_on_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "mmrl_env.learners.joint", raising=False)
    cls = resolve("mmrl_env.learners.joint:JointLearner")
    assert cls.__name__ == "JointLearner" and "mmrl_env.learners.joint" in sys.modules


def test_missing_module_names_the_spec() -> None:
    with pytest.raises(ModuleNotFoundError, match=r"'mmrl_env\.no_such:Thing'.*'mmrl_env\.no_such'") as info:
        resolve("mmrl_env.no_such:Thing")
    assert info.value.name == "mmrl_env.no_such"


def test_missing_attribute_names_the_spec() -> None:
    with pytest.raises(AttributeError, match=r"'os\.path:no_such'.*no attribute 'no_such'"):
        resolve("os.path:no_such")


@pytest.mark.parametrize("spec", ["os.path", "os.path:", ":join", "os:path:join", ""])
def test_malformed_spec_says_the_expected_form(spec: str) -> None:
    with pytest.raises(ValueError, match="'package.module:Name'"):
        resolve(spec)


def test_a_missing_dependency_of_an_existing_module_keeps_its_own_error(tmp_path, monkeypatch) -> None:
    (tmp_path / "needs_absent_dep.py").write_text("import absent_dependency_xyz\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        resolve("needs_absent_dep:X")
    assert info.value.name == "absent_dependency_xyz"
