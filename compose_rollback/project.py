"""Which compose project we are in: files, name, directory, profiles, env files.

Resolved the way compose resolves them (flags, then ``COMPOSE_*`` variables, then the default
file names searched upward from the working directory), without calling docker, so that
commands which need no engine (``history``, ``diff``, ``--help``) stay fast.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose_rollback.errors import BadInput

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = (
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)
_TOP_NAME = re.compile(r"^name:\s*['\"]?([^'\"#\s]+)['\"]?\s*(?:#.*)?$", re.MULTILINE)
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9_-]")


@dataclass(frozen=True)
class ComposeOptions:
    """Compose's global flags as the user typed them (before ``rollback``)."""

    files: Sequence[str] = ()
    project_name: str | None = None
    project_directory: str | None = None
    env_files: Sequence[str] = ()
    profiles: Sequence[str] = ()


@dataclass(frozen=True)
class Project:
    """A resolved compose project."""

    name: str
    directory: Path
    files: tuple[Path, ...]
    env_files: tuple[Path, ...] = ()
    profiles: tuple[str, ...] = field(default=())

    def relative(self, path: Path) -> str:
        """A path as written in revision files: relative to the project directory if inside."""
        try:
            return path.resolve().relative_to(self.directory).as_posix()
        except ValueError:
            return path.as_posix()


def normalize_name(raw: str) -> str:
    """Compose's project-name normalisation: lowercase, only ``[a-z0-9_-]``."""
    return _INVALID_NAME_CHARS.sub("", raw.lower()).lstrip("_-")


def _find_default_files(start: Path) -> tuple[Path, ...]:
    for directory in (start, *start.parents):
        for candidate in DEFAULT_FILES:
            main = directory / candidate
            if main.is_file():
                overrides = [directory / o for o in OVERRIDE_FILES if (directory / o).is_file()]
                return (main, *overrides[:1])
    raise BadInput(
        f"no compose file found in {start} or any parent directory",
        hint="run from your project directory or pass -f compose.yaml",
    )


def _split_env_list(value: str | None, sep: str) -> list[str]:
    return [part for part in (value or "").split(sep) if part.strip()]


def _declared_name(files: Sequence[Path]) -> str | None:
    """The last top-level ``name:`` among the files, if it is a plain literal."""
    found: str | None = None
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        match = _TOP_NAME.search(text)
        if match and "$" not in match.group(1):
            found = match.group(1)
    return found


def resolve_project(
    *, options: ComposeOptions, cwd: Path, environ: Mapping[str, str]
) -> Project:
    """Resolve files, name and directory as ``docker compose`` does."""
    if "-" in options.files:
        raise BadInput("reading the compose file from stdin (-f -) is not supported",
                       hint="write it to a file and pass -f FILE")
    if options.files:
        raw_files = list(options.files)
    else:
        sep = environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        raw_files = _split_env_list(environ.get("COMPOSE_FILE"), sep)
    if raw_files:
        files = tuple((cwd / f).resolve() for f in raw_files)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise BadInput(f"compose file not found: {missing[0]}",
                           hint="check -f / COMPOSE_FILE")
    else:
        files = _find_default_files(cwd.resolve())

    if options.project_directory:
        directory = (cwd / options.project_directory).resolve()
    else:
        directory = files[0].parent

    env_raw = list(options.env_files) or _split_env_list(environ.get("COMPOSE_ENV_FILES"), ",")
    env_files = tuple((cwd / e).resolve() for e in env_raw)
    profiles = tuple(options.profiles) or tuple(
        _split_env_list(environ.get("COMPOSE_PROFILES"), ",")
    )

    raw_name = (
        options.project_name
        or environ.get("COMPOSE_PROJECT_NAME")
        or _declared_name(files)
        or directory.name
    )
    name = normalize_name(raw_name)
    if not name:
        raise BadInput(f"project name {raw_name!r} is empty after normalisation",
                       hint="pass -p NAME with lowercase letters, digits, - or _")
    if options.project_name and name != options.project_name:
        raise BadInput(
            f"invalid project name {options.project_name!r}",
            hint="use lowercase letters, digits, dashes and underscores, starting with a "
            "letter or digit",
        )
    return Project(name=name, directory=directory, files=files, env_files=env_files,
                   profiles=profiles)


MAX_EXPANDED_NODES = 1_000_000


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
