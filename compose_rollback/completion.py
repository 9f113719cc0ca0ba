"""Shell completion through docker's own: answer cobra's ``__complete`` requests.

docker's completion scripts (``docker completion bash|zsh|fish``) run ``docker __complete
compose rollback … WORD``; the docker CLI then runs the Compose plugin, our shim, as
``docker-compose __complete compose [compose globals] rollback … WORD`` (docker/cli
``cli-plugins/manager/cobra.go``) and prints its answer as its own; ``docker rollback …`` runs
``docker-rollback __complete rollback … WORD``. Debian's older bash completion (docker.io 20.10)
runs the plugin itself, as ``docker-compose __completeNoDesc [compose globals] rollback … WORD``
or ``docker-rollback __completeNoDesc … WORD``. The answer is cobra's (spf13/cobra
``completions.go``): one candidate a line, ``value<TAB>description``, then ``:<directive>``.

Commands and flags are read from the click command that Typer builds of ``cli.app``, so a new
command or option completes with nothing to add here (this module belongs to the CLI side, as
``cli`` does; no core module imports it). Values: revision numbers, newest first
with their status (from the store's history), for ``REV`` (``revert --to``) and diff's ``A`` and
``B``; service names (from the compose files: no engine, no ``compose config``) for ``SERVICE``.
This runs on every TAB: nothing on this path imports python-on-whales.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# cobra's ShellCompDirective bits (spf13/cobra completions.go)
ERROR = 1
NO_FILE_COMP = 4
KEEP_ORDER = 32
#: Which values a parameter takes, by its metavar (as ``--help`` shows it).
REVISION_METAVARS = frozenset({"REV", "A", "B"})
SERVICE_METAVARS = frozenset({"SERVICE"})
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}  # strconv.ParseBool, as cobra reads it
_MAX_INCLUDED_FILES = 64


@dataclass(frozen=True)
class Candidate:
    """One completion: the word, and what the shell may show beside it."""

    value: str
    description: str = ""


@dataclass(frozen=True)
class Answer:
    """The completions of one word, and cobra's directive for the shell."""

    candidates: list[Candidate]
    directive: int = NO_FILE_COMP

    def render(self, *, descriptions: bool) -> str:
        """Cobra's wire format: one line per candidate, then ``:<directive>``."""
        lines = []
        for c in self.candidates:
            text = " ".join(c.description.split()) if descriptions else ""
            lines.append(f"{c.value}\t{text}" if text else c.value)
        return "".join(f"{line}\n" for line in [*lines, f":{self.directive}"])


@dataclass
class Values:
    """Where value candidates come from; each source is asked only when a value is wanted."""

    revisions: Callable[[], list[Candidate]] = list
    services: Callable[[], list[str]] = list


def answer(words: Sequence[str], *, environ: Mapping[str, str], cwd: Path) -> str:
    """The whole reply to ``__complete …`` (``words`` begins with the request word)."""
    from compose_rollback.argv import split_argv
    from compose_rollback.errors import RollbackError

    descriptions = words[0] == "__complete" and _descriptions_wanted(environ)
    try:
        inv = split_argv(words[1:], as_plugin=True)
    except RollbackError:
        return Answer([], ERROR).render(descriptions=False)
    args = inv.args or [""]
    values = project_values(inv.compose, environ=environ, cwd=cwd)
    return complete(args[:-1], args[-1], values=values).render(descriptions=descriptions)


def _descriptions_wanted(environ: Mapping[str, str]) -> bool:
    """cobra's ``<PROGRAM>_COMPLETION_DESCRIPTIONS`` (then ``COBRA_…``): false turns them off."""
    value = environ.get("DOCKER_COMPLETION_DESCRIPTIONS") or environ.get(
        "COBRA_COMPLETION_DESCRIPTIONS", "")
    return value not in _FALSE


def complete(words: Sequence[str], incomplete: str, *, values: Values,
             root: Any = None) -> Answer:
    """Candidates for ``incomplete`` after ``words`` (our argv after ``rollback``).

    ``root``: the click command to complete (default: the one Typer builds of ``cli.app``).
    """
    if root is None:
        from compose_rollback.cli import click_command

        root = click_command()
    where = _walk(root, words)
    if where is None:
        return Answer([])
    if where.pending is not None:
        return _values(where.pending, incomplete, values, where)
    if incomplete.startswith("--") and "=" in incomplete and not where.ended:
        name, _, prefix = incomplete.partition("=")
        option = _option(where.command, name)
        return _values(option, prefix, values, where) if option else Answer([])
    if incomplete.startswith("-") and not where.ended:
        return Answer(_options(where, incomplete))
    commands = getattr(where.command, "commands", None)
    if commands is not None:
        return Answer([Candidate(name, cmd.get_short_help_str(limit=80))
                       for name, cmd in sorted(commands.items())
                       if name.startswith(incomplete) and not cmd.hidden])
    argument = _argument(where.command, where.positionals)
    if argument is None:  # nothing positional left: the flags are what can come next
        return Answer([] if where.ended else _options(where, incomplete))
    return _values(argument, incomplete, values, where)


@dataclass
class _Where:
    """What the words before the cursor amount to."""

    command: Any  # a click Command (or Group)
    path: list[tuple[str, Any]]  # the groups above it, each with its name
    positionals: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # options given (by parameter name)
    pending: Any = None  # the option whose value is the word under the cursor
    ended: bool = False  # after ``--``


def _walk(root: Any, words: Sequence[str]) -> _Where | None:
    """Follow the words through the command tree as click parses them (None: no such command)."""
    where = _Where(root, [])
    for word in words:
        if where.pending is not None:
            where.pending = None
        elif word == "--" and not where.ended:
            where.ended = True
        elif word.startswith("-") and word != "-" and not where.ended:
            option, inline = _given(where.command, word)
            if option is not None:
                where.seen.add(option.name)
                if not option.is_flag and not inline:
                    where.pending = option
        elif getattr(where.command, "commands", None) is not None:
            sub = where.command.commands.get(word)
            if sub is None:
                return None
            where = _Where(sub, [*where.path, (word, where.command)])
        else:
            where.positionals.append(word)
    return where


def _given(command: Any, word: str) -> tuple[Any, bool]:
    """The option a word names and whether its value is in the same word (``--to=3``, ``-mX``)."""
    if word.startswith("--"):
        name, eq, _ = word.partition("=")
        return _option(command, name), bool(eq)
    option = _option(command, word[:2])
    return option, len(word) > 2


def _option(command: Any, name: str) -> Any:
    for param in command.params:
        if param.param_type_name == "option" and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def _options(where: _Where, prefix: str) -> list[Candidate]:
    """The command's options (its help option too) not given yet, unless they repeat."""
    command = where.command
    found = []
    for param in command.get_params(_context(where)):
        if param.param_type_name != "option" or param.hidden:
            continue
        if param.name in where.seen and not param.multiple:
            continue
        found += [Candidate(name, param.help or "") for name in
                  (*param.opts, *param.secondary_opts) if name.startswith(prefix)]
    return sorted(found, key=lambda c: c.value)


def _context(where: _Where) -> Any:
    """A click context for the command, under its parents' (which pass down ``-h``)."""
    parent = None
    names = ["rollback", *(name for name, _ in where.path)]
    commands = [*(group for _, group in where.path), where.command]
    for name, command in zip(names, commands, strict=True):
        parent = command.make_context(name, [], parent=parent, resilient_parsing=True)
    return parent


def _argument(command: Any, given: Sequence[str]) -> Any:
    """The positional parameter the next word fills (None when all are filled)."""
    left = len(given)
    for param in command.params:
        if param.param_type_name != "argument":
            continue
        if param.nargs < 0:
            return param
        if left < param.nargs:
            return param
        left -= param.nargs
    return None


def _values(param: Any, prefix: str, values: Values, where: _Where) -> Answer:
    metavar = param.metavar or ""
    if metavar in REVISION_METAVARS:
        return Answer([c for c in values.revisions() if c.value.startswith(prefix)],
                      NO_FILE_COMP | KEEP_ORDER)
    if metavar in SERVICE_METAVARS:
        taken = set(where.positionals) if param.nargs < 0 else set()
        return Answer([Candidate(s) for s in values.services()
                       if s.startswith(prefix) and s not in taken])
    choices = getattr(param.type, "choices", None)  # click.Choice (a Typer Enum parameter)
    return Answer([Candidate(str(c)) for c in choices or () if str(c).startswith(prefix)])


# -- where the values come from: the project, resolved as the commands resolve it ------------
def project_values(compose: Mapping[str, object], *, environ: Mapping[str, str],
                   cwd: Path) -> Values:
    """Revisions and services of the project the compose globals and ``cwd`` name."""
    cache: dict[str, Any] = {}

    def project() -> Any:
        if "project" not in cache:
            from compose_rollback.errors import RollbackError
            from compose_rollback.project import ComposeOptions, resolve_project

            try:
                cache["project"] = resolve_project(options=ComposeOptions.from_flags(compose),
                                                   cwd=cwd, environ=environ)
            except RollbackError:
                cache["project"] = None
        return cache["project"]

    def revisions() -> list[Candidate]:
        found = project()
        return [] if found is None else revision_candidates(found, environ=environ)

    def services() -> list[str]:
        found = project()
        return [] if found is None else compose_services(found.files)

    return Values(revisions=revisions, services=services)


def revision_candidates(project: Any, *, environ: Mapping[str, str]) -> list[Candidate]:
    """Every revision of the store, newest first: ``3  deployed 2026-11-30 12:04 message``."""
    from compose_rollback.context import store_dir
    from compose_rollback.errors import RollbackError
    from compose_rollback.revisions import RevisionStore

    try:
        revisions = RevisionStore(store_dir(project, environ)).revisions()
    except RollbackError:
        return []
    return [Candidate(str(r.number), " ".join(
        part for part in (r.status, r.created[:16].replace("T", " "), r.message) if part))
        for r in reversed(revisions)]


def compose_services(files: Sequence[Path]) -> list[str]:
    """The service names the files (and the files they ``include``) define, sorted."""
    from compose_rollback.overlay import OverlayError, load_yaml

    names: set[str] = set()
    todo, done = list(files), set[Path]()
    while todo and len(done) < _MAX_INCLUDED_FILES:
        path = todo.pop(0)
        if path in done:
            continue
        done.add(path)
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, OverlayError):
            continue
        if not isinstance(data, dict):
            continue
        services = data.get("services")
        if isinstance(services, dict):
            names.update(str(name) for name in services)
        todo += _included(data.get("include"), path.parent)
    return sorted(names)


def _included(entries: object, base: Path) -> list[Path]:
    """The local files of an ``include:`` list (short form, or ``path:`` a string or a list)."""
    paths: list[object] = []
    for entry in entries if isinstance(entries, list) else []:
        given = entry.get("path") if isinstance(entry, dict) else entry
        paths += given if isinstance(given, list) else [given]
    return [base / p for p in paths
            if isinstance(p, str) and "$" not in p and "://" not in p and not p.startswith("git@")]
