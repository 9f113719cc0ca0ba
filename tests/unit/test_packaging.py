"""Every subpackage of compose_rollback goes into the installed distribution.

A hand-kept package list once left ``compose_rollback.rollout`` out of every install: the
installed plugin then failed on every ``up`` (exit 70) while the tests that import from the
working tree passed.
"""

from __future__ import annotations

from pathlib import Path

import tomllib
from setuptools import find_packages

ROOT = Path(__file__).parents[2]


def test_every_subpackage_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert isinstance(config["packages"], dict), "list no packages by hand: let them be found"
    include = config["packages"]["find"]["include"]
    installed = set(find_packages(where=str(ROOT), include=include))
    # Every folder holding modules, with or without an __init__.py (find_packages skips
    # folders without one: a namespace folder would be left out of the install).
    on_disk = {
        ".".join(module.parent.relative_to(ROOT).parts)
        for module in (ROOT / "compose_rollback").rglob("*.py")
        if "__pycache__" not in module.parts
    }
    assert on_disk <= installed, f"left out of the install: {sorted(on_disk - installed)}"
    assert all(name.startswith("compose_rollback") for name in installed), installed
