"""Tests of the hilos.targets package surface: what it re-exports, and how its modules depend."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import pytest

from hilos import targets as targets_mod

SRC = Path(targets_mod.__file__).resolve().parent.parent


def test_public_names() -> None:
    exported: Sequence[str] = targets_mod.__all__
    for name in exported:
        assert hasattr(targets_mod, name), name


def test_the_package_reexports_what_its_modules_define() -> None:
    from hilos.targets import parse, ports, space, walk

    assert targets_mod.parse_targets is parse.parse_targets
    assert targets_mod.TargetSpace is space.TargetSpace
    assert targets_mod.Permutation is walk.Permutation
    assert targets_mod.parse_ports is ports.parse_ports
    assert targets_mod.MAX_LINE == parse.MAX_LINE


def test_hilos_ports_moved_into_targets() -> None:
    # One home for port specs (issue 10): the old top-level module is gone, not shadowed.
    assert importlib.util.find_spec("hilos.ports") is None


def _private_imports(path: Path) -> list[str]:
    """`from hilos.x import _name` lines of a module (a module's own privates are its own)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hilos"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    return found


@pytest.mark.parametrize(
    "module",
    sorted(
        str(p.relative_to(SRC))
        for pattern in ("targets/*.py", "services/*.py", "validate.py", "errors.py", "sanitize.py")
        for p in SRC.glob(pattern)
    ),
)
def test_no_module_imports_another_modules_private_names(module: str) -> None:
    assert _private_imports(SRC / module) == []


def test_every_targets_module_is_importable_on_its_own() -> None:
    for path in sorted((SRC / "targets").glob("*.py")):
        importlib.import_module(f"hilos.targets.{path.stem}".removesuffix(".__init__"))
