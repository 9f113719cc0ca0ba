"""Which compose project we are in: files, name, directory, profiles, env files.

Resolved exactly as Compose v2.40.3 resolves them (``cmd/compose/compose.go`` and compose-go's
``cli/options.go``), without calling docker, so that commands which need no engine
(``history``, ``diff``, ``--help``) stay fast:

1. ``COMPOSE_*`` variables of the first env file (``--env-file``, ``COMPOSE_ENV_FILES``, else
   the ``.env`` of ``--project-directory``, of the first ``-f`` file's folder or of the working
   directory) join the process environment unless it already has them.
2. The interpolation environment: the process environment, then that env file's variables.
3. Files: ``-f``, else ``COMPOSE_FILE`` (split at ``COMPOSE_PATH_SEPARATOR``), else the default
   names searched upward from ``--project-directory`` or the working directory.
4. The project directory: ``--project-directory``, else the first file's folder; its ``.env``
   (when no env file was named) adds the variables not set yet.
5. Profiles: ``--profile``, else ``COMPOSE_PROFILES``.
6. Name: ``-p``, else ``COMPOSE_PROJECT_NAME`` (both must already be valid), else the last
   ``name:`` of the files, interpolated and normalised, else the directory's name, normalised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from compose_rollback.errors import BadInput, ProjectUnresolved

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILES = (
    "compose.override.yml",
    "compose.override.yaml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
)
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9_-]")
_NAME_LINE = re.compile(r"""^(?:name|"name"|'name')[ \t]*:(.*)$""", re.MULTILINE)
# A one-line plain scalar (no indicator first), and a quoted one without escapes.
_PLAIN = re.compile(r"""[ \t]+([^\s'"#&*!|>%@`{\[\],?:-][^#]*?|[-?:][^\s#][^#]*?)?"""
                    r"""[ \t]*(?:[ \t]#.*)?""")
_QUOTED = re.compile(r"""[ \t]*(?:"([^"\\]*)"|'((?:[^']|'')*)')[ \t]*(?:#.*)?""")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass(frozen=True)
class ComposeOptions:
    """Compose's global flags as the user typed them (before ``rollback``)."""

    files: Sequence[str] = ()
    project_name: str | None = None
    project_directory: str | None = None
    env_files: Sequence[str] = ()
    profiles: Sequence[str] = ()

    @classmethod
    def from_flags(cls, flags: Mapping[str, object]) -> ComposeOptions:
        """From the compose globals ``plugin.split_argv`` collected (``files``, ...)."""
        def many(key: str) -> tuple[str, ...]:
            value = flags.get(key)
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        def one(key: str) -> str | None:
            value = flags.get(key)
            return value if isinstance(value, str) else None

        return cls(files=many("files"), project_name=one("project_name"),
                   project_directory=one("project_directory"), env_files=many("env_files"),
                   profiles=many("profiles"))


@dataclass(frozen=True)
class Project:
    """A resolved compose project.

    ``env_files``: what compose commands must be given as ``--env-file`` to see the variables
    the user's compose sees (empty when the project directory's ``.env`` is all, which compose
    finds by itself). ``environment``: compose's interpolation environment (secrets: memory
    only, never shown).
    """

    name: str
    directory: Path
    files: tuple[Path, ...]
    env_files: tuple[Path, ...] = ()
    profiles: tuple[str, ...] = field(default=())
    environment: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def relative(self, path: Path) -> str:
        """A path as written in revision files: relative to the project directory if inside."""
        absolute = Path(os.path.normpath(Path.cwd() / path))
        for inside, base in ((absolute, self.directory),
                             (absolute.resolve(), self.directory.resolve())):
            try:
                return inside.relative_to(base).as_posix()
            except ValueError:
                continue
        return path.as_posix()


def normalize_name(raw: str) -> str:
    """Compose's project-name normalisation: lowercase, only ``[a-z0-9_-]``."""
    return _INVALID_NAME_CHARS.sub("", raw.lower()).lstrip("_-")


def working_directory(environ: Mapping[str, str]) -> Path:
    """The working directory as Go's ``os.Getwd`` (so compose) sees it: ``$PWD`` when it is
    this directory, so a project entered through a symlink keeps the symlink's name."""
    here = Path.cwd()
    logical = environ.get("PWD", "")
    if logical.startswith("/"):
        try:
            if Path(logical).samefile(here):
                return Path(logical)
        except OSError:
            pass
    return here


class _Env:
    """The interpolation environment, remembering which env file each variable came from."""

    def __init__(self, process: Mapping[str, str]) -> None:
        self.values = dict(process)
        self.origin: dict[str, Path] = {}

    def merge(self, paths: Sequence[Path]) -> None:
        """compose-go's ``WithDotEnv``: add what the files set and the environment lacks."""
        sources: dict[str, Path] = {}
        for key, value in _read(paths, self.values, sources=sources).items():
            if key not in self.values:
                self.values[key] = value
                self.origin[key] = sources[key]

    def export(self, paths: Sequence[Path]) -> None:
        """Compose first copies the ``COMPOSE_*`` variables of the env file into its process
        environment (quietly skipping a file it cannot read): they then act as if exported."""
        sources: dict[str, Path] = {}
        try:
            values = _read(paths, self.values, sources=sources)
        except BadInput:
            return
        for key, value in values.items():
            if key.startswith("COMPOSE_") and key not in self.values:
                self.values[key] = value
                self.origin[key] = sources[key]

    def where(self, key: str) -> str:
        origin = self.origin.get(key)
        return f"{key} (from {origin})" if origin else key


def resolve_project(
    *, options: ComposeOptions, cwd: Path, environ: Mapping[str, str]
) -> Project:
    """Resolve files, name, directory, profiles and env files as ``docker compose`` does."""
    _reject_unsupported(options.files, "-f")
    named_env = [_abs(cwd, e) for e in options.env_files] or [
        _abs(cwd, e) for e in environ.get("COMPOSE_ENV_FILES", "").split(",") if e]
    project_dir = _abs(cwd, options.project_directory) if options.project_directory else None
    flag_files = [_abs(cwd, f) for f in options.files]
    first_dir = project_dir or (flag_files[0].parent if flag_files else cwd)

    env = _Env(environ)
    env.export(named_env or _dotenv(first_dir, environ, strict=False))
    env.values.setdefault("PWD", str(cwd))
    loaded = named_env or _dotenv(first_dir, env.values, strict=True)
    env.merge(loaded)
    files = tuple(flag_files) or _files_from_variable(env, cwd) or _search(project_dir or cwd)
    directory = project_dir or files[0].parent
    if not named_env:
        second = _dotenv(directory, env.values, strict=True)
        if second and second != loaded:
            env.merge(second)
            loaded = [*second, *loaded]  # as --env-file: the first file read still wins
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise ProjectUnresolved(str(missing[0]), "no such compose file",
                                hint="check -f / COMPOSE_FILE")
    profiles = tuple(options.profiles) or tuple(
        p.strip() for p in env.values.get("COMPOSE_PROFILES", "").split(",") if p.strip())
    return Project(
        name=_project_name(options.project_name, env, files, directory),
        directory=directory, files=files, profiles=profiles, environment=env.values,
        env_files=() if list(loaded) in ([], [directory / ".env"]) else tuple(loaded),
    )


def _abs(cwd: Path, path: str) -> Path:
    """Go's ``filepath.Abs``: joined to the working directory and cleaned, symlinks kept."""
    return Path(os.path.normpath(cwd / path))  # normpath: lexical, as Go's Clean


def _reject_unsupported(paths: Sequence[str], where: str) -> None:
    for path in paths:
        if path == "-":
            raise BadInput(f"reading the compose file from stdin ({where} -) is not supported",
                           hint="write it to a file and pass -f FILE")
        if path.startswith(("oci://", "git@")) or "://" in path:
            raise BadInput(f"remote compose files are not supported: {path}",
                           hint="check the project out and pass -f with a local file")


def _dotenv(directory: Path, environ: Mapping[str, str], *, strict: bool) -> list[Path]:
    """``<directory>/.env`` if it is a file, unless ``COMPOSE_DISABLE_ENV_FILE`` is true."""
    disable = environ.get("COMPOSE_DISABLE_ENV_FILE")
    if disable is not None:
        if disable in _TRUE:
            return []
        if disable not in _FALSE:
            if not strict:
                return []
            raise ProjectUnresolved("COMPOSE_DISABLE_ENV_FILE", f"{disable!r} is not a boolean",
                                    hint="set it to true or false")
    candidate = directory / ".env"
    return [candidate] if candidate.is_file() else []


def _read(paths: Sequence[Path], current: Mapping[str, str], *,
          sources: dict[str, Path] | None = None) -> dict[str, str]:
    from compose_rollback.dotenv import EnvFileError, read_env_files

    if not paths:
        return {}
    try:
        return read_env_files(paths, current, sources=sources)
    except FileNotFoundError as error:
        raise ProjectUnresolved(str(error.filename), "env file not found",
                                hint="check --env-file / COMPOSE_ENV_FILES") from None
    except OSError as error:
        raise ProjectUnresolved(str(error.filename), error.strerror or str(error)) from None
    except EnvFileError as error:
        raise BadInput(str(error), hint="fix the env file (KEY=VALUE lines)") from None


def _files_from_variable(env: _Env, cwd: Path) -> tuple[Path, ...]:
    """``COMPOSE_FILE`` split at ``COMPOSE_PATH_SEPARATOR``; each part relative to ``cwd``."""
    value = env.values.get("COMPOSE_FILE")
    if value is None:
        return ()
    parts = value.split(env.values.get("COMPOSE_PATH_SEPARATOR") or os.pathsep)
    _reject_unsupported(parts, "COMPOSE_FILE=")
    if "" in parts:
        raise ProjectUnresolved(env.where("COMPOSE_FILE"), f"has an empty entry ({value!r})",
                                hint="list compose files, separated by COMPOSE_PATH_SEPARATOR "
                                f"(default {os.pathsep!r}), or unset it")
    files = tuple(_abs(cwd, part) for part in parts)
    for path, part in zip(files, parts, strict=True):
        if not path.exists():
            raise ProjectUnresolved(env.where("COMPOSE_FILE"), f"{part}: no such file",
                                    hint="paths are relative to the working directory")
    return files


def _search(start: Path) -> tuple[Path, ...]:
    for directory in (start, *start.parents):
        mains = [directory / n for n in DEFAULT_FILES if (directory / n).exists()]
        if mains:
            overrides = [directory / o for o in OVERRIDE_FILES if (directory / o).exists()]
            return (mains[0], *overrides[:1])
    raise BadInput(
        f"no compose file found in {start} or any parent directory",
        hint="run from your project directory or pass -f compose.yaml",
    )


def _project_name(flag: str | None, env: _Env, files: Sequence[Path], directory: Path) -> str:
    variable = env.values.get("COMPOSE_PROJECT_NAME")
    if flag or variable:  # set "imperatively": used as given, so it must already be valid
        source, given = ("-p", flag) if flag else (env.where("COMPOSE_PROJECT_NAME"), variable)
        if normalize_name(given or "") != given:
            raise ProjectUnresolved(source, f"invalid project name {given!r}", hint=(
                "use lowercase letters, digits, dashes and underscores, starting with a "
                "letter or digit"))
        return given
    declared = [raw for raw in (_declared_name(f) for f in files) if raw]
    if not declared:
        name = normalize_name(directory.name)
        if not name:
            raise BadInput(f"project name {directory.name!r} (the directory) is empty after "
                           "normalisation", hint="pass -p NAME or set name: in compose.yaml")
        return name
    raw = declared[-1]
    if "$" in raw:
        from compose_rollback.dotenv import TemplateError, substitute

        try:
            raw = substitute(raw, env.values.get)
        except TemplateError as error:
            raise ProjectUnresolved("name:", str(error)) from None
    name = normalize_name(raw)
    if not name:
        raise ProjectUnresolved("name:", f"{declared[-1]!r} gives an empty project name",
                                hint="set the variables it uses, or pass -p NAME")
    return name


def _declared_name(path: Path) -> str:
    """The raw (not interpolated) top-level ``name:`` of a compose file, ``""`` if none.

    A plain or simply quoted one-line value is read with a regular expression (the common case
    needs no YAML parser, ~15 ms of start-up); anything else is read by the YAML parser.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    lines = _NAME_LINE.findall(text)
    if not lines:
        return ""
    if len(lines) == 1 and not re.search(r"(?m)^(?:---|\.\.\.)", text):
        value = lines[0]
        match = _QUOTED.fullmatch(value)
        if match and not _continued(text):
            single = match.group(2)
            return match.group(1) if single is None else single.replace("''", "'")
        match = _PLAIN.fullmatch(value)
        if match and not _continued(text):
            plain = (match.group(1) or "").strip()
            return "" if plain in _NULLS else plain
    return _yaml_name(text)


def _continued(text: str) -> bool:
    """Whether the line after ``name:`` continues its value (a multi-line scalar)."""
    after = text[_NAME_LINE.search(text).end():].split("\n", 2)  # type: ignore[union-attr]
    following = after[1] if len(after) > 1 else ""
    return following[:1] in (" ", "\t") and following.strip()[:1] not in ("", "#")


def _yaml_name(text: str) -> str:
    """The last non-empty top-level ``name`` of the YAML documents (as compose-go reads it)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.nodes import MappingNode, ScalarNode

    found = ""
    try:
        for document in YAML(typ="safe", pure=True).compose_all(text):
            if not isinstance(document, MappingNode):
                continue
            for key, value in document.value:
                if (isinstance(key, ScalarNode) and key.value == "name"
                        and isinstance(value, ScalarNode)
                        and value.tag != "tag:yaml.org,2002:null" and value.value):
                    found = value.value
    except YAMLError:
        return found  # compose reports the broken file itself when it loads it
    return found
