"""No import circles between our modules, lazy (function-level) imports included.

A lazy import hides a circle from Python, not from a reader: ``cli`` and ``plugin``, and
``settings`` and ``gates.specs``, used to import each other that way. Imports under
``if TYPE_CHECKING:`` are for the type checker only and do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "compose_rollback"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    # One walk of the tree that does not enter an `if TYPE_CHECKING:` body (its `else:` counts).
    todo: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:  # `from compose_rollback import render` names a module
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        todo.extend(ast.iter_child_nodes(node))
    return found & known


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    return {name: _imports(path, known) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself, with the path back (one per circle)."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                circle = frozenset(path)
                if circle not in seen:
                    seen.add(circle)
                    found.append([*path, start])
            elif nxt not in path:
                walk(start, nxt, [*path, nxt])

    for name in sorted(graph):
        walk(name, name, [name])
    return found


def test_the_graph_sees_lazy_imports() -> None:
    graph = import_graph()
    assert "compose_rollback.cli" in graph["compose_rollback.plugin"]  # inside main()
    assert "compose_rollback.deploy" in graph["compose_rollback.cli"]  # inside commands


def test_imports_for_the_type_checker_do_not_count(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from compose_rollback import deploy\n"
        "    if True:\n"
        "        import compose_rollback.engine\n"
        "else:\n"
        "    from compose_rollback.errors import BadInput\n"
        "def f():\n"
        "    from compose_rollback import render\n", encoding="utf-8")
    known = {"compose_rollback.deploy", "compose_rollback.engine", "compose_rollback.errors",
             "compose_rollback.render"}
    assert _imports(module, known) == {"compose_rollback.errors", "compose_rollback.render"}


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(("module", "blocked"), [
    ("compose_rollback.cli", "compose_rollback.plugin"),
    ("compose_rollback.gates.specs", "compose_rollback.settings"),
])
def test_each_module_works_without_the_other(module: str, blocked: str) -> None:
    """In a fresh interpreter, with the other module made unimportable."""
    code = (f"import sys; sys.modules[{blocked!r}] = None; import {module}\n"
            "from compose_rollback.gates.specs import parse_gate\n"
            "assert parse_gate({'tcp': '127.0.0.1:1', 'interval': '2s'}, path='g',"
            " service=None).interval == 2.0\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent, check=False)
    assert done.returncode == 0, done.stderr
