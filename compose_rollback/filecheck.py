"""The compose files, checked before Compose reads them: YAML syntax, and alias bombs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compose_rollback.errors import BadInput
from compose_rollback.project import Project

MAX_EXPANDED_NODES = 1_000_000


def may_alias(project: Project) -> bool:
    """Whether a compose file may hold a YAML alias: an anchor (``&name``) is what an alias
    refers to, so a file without the byte ``&`` (in any encoding compose reads) has none, and
    cannot be an alias bomb. A file that cannot be read may (``check_files`` says why)."""
    for path in project.files:
        try:
            if b"&" in path.read_bytes():
                return True
        except OSError:
            return True
    return False


def check_files(project: Project) -> None:
    """Reject what would make compose itself blow up, before compose reads the files.

    A YAML alias bomb ("billion laughs") costs ruamel nothing to parse (aliases stay shared)
    but makes compose expand it in memory until the machine swaps.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    for path in project.files:
        try:
            root = YAML(typ="safe", pure=True).compose(path.read_text(encoding="utf-8"))
        except YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            problem = getattr(error, "problem", None) or "invalid YAML"
            raise BadInput(f"{path}: {problem}{where}", hint="fix the YAML syntax") from None
        except (OSError, UnicodeDecodeError) as error:
            raise BadInput(f"{path}: cannot be read: {error}") from None
        if root is not None and _expanded_size(root, {}, path=path) > MAX_EXPANDED_NODES:
            raise BadInput(f"{path}: its YAML aliases expand to more than "
                           f"{MAX_EXPANDED_NODES:,} nodes (an alias bomb?)",
                           hint="write the repeated parts out, or use fewer nested aliases")


def _expanded_size(node: Any, sizes: dict[int, int], *, path: Path, depth: int = 0) -> int:
    """How many nodes the YAML graph has once every alias is expanded (memoised: O(nodes))."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    if id(node) in sizes:
        return sizes[id(node)]
    if depth > 200:
        raise BadInput(f"{path}: nested too deeply", hint="simplify the YAML")
    total = 1
    if isinstance(node, SequenceNode):
        total += sum(_expanded_size(c, sizes, path=path, depth=depth + 1) for c in node.value)
    elif isinstance(node, MappingNode):
        total += sum(_expanded_size(k, sizes, path=path, depth=depth + 1)
                     + _expanded_size(v, sizes, path=path, depth=depth + 1)
                     for k, v in node.value)
    sizes[id(node)] = total
    return total
