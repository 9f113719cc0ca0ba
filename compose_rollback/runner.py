"""Running one command: the context it works on, its output, and the one place where what
happened becomes a message and an exit code.

Typer (``cli``) parses every command's options. A few invocations need no option parser and
are answered without importing it (``quick``): typer's import is ~50 ms of the ~200 ms a
``history`` of 1,000 revisions took. Both paths share everything here, so an answer, an error
line and an exit code are the same whichever path gave them.
"""

import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from compose_rollback import jsontext, render
from compose_rollback.argv import Invocation, docker_environment, split_argv
from compose_rollback.errors import (
    BadInput,
    Crashed,
    DeployFailed,
    DockerFailed,
    ExitCode,
    Locked,
    RestoreFailed,
    RollbackError,
    SettingsError,
    Unreachable,
    WriteFailedAfterApply,
)

if TYPE_CHECKING:
    from compose_rollback.context import Context
    from compose_rollback.deploy import DeployResult, Outcome

#: The running command's invocation (``invocation``) and ``--debug`` (``debug``).
state: dict[str, Any] = {}


def duration(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    from compose_rollback.durations import parse_duration

    return parse_duration(value, path=flag)


def context(wait_lock: str | None = None, orchestrator: str | None = None) -> "Context":
    """The project of the invocation's compose flags, its store, and a lazily made engine."""
    from compose_rollback.context import Context, store_dir
    from compose_rollback.project import ComposeOptions, resolve_project, working_directory

    inv: Invocation = state["invocation"]
    project = resolve_project(options=ComposeOptions.from_flags(inv.compose),
                              cwd=working_directory(os.environ), environ=os.environ)
    from compose_rollback.revisions import RevisionStore

    if orchestrator not in (None, "compose", "swarm"):
        raise SettingsError("--orchestrator", f"expected compose or swarm, got {orchestrator!r}")

    def engine() -> Any:  # imported when a command first talks to docker (not `history`)
        from compose_rollback.engine import DockerOptions, Engine

        return Engine(docker=DockerOptions(**dict(inv.docker.items())))  # type: ignore[arg-type]

    return Context(project=project, store=RevisionStore(store_dir(project, os.environ)),
                   progress=progress_view(), engine_factory=engine,
                   wait_lock=duration(wait_lock, "--wait-lock") or 0.0,
                   orchestrator=orchestrator)


class LiveView:
    """Progress on stderr: plain lines, or on a TTY a per-service block redrawn in place.

    Plain when stderr is not a TTY, with ``NO_COLOR``, or ``--progress plain`` (as compose).
    """

    def __init__(self, *, live: bool) -> None:
        self.live = live
        self.services: dict[str, str] = {}
        self.started = time.monotonic()
        self.drawn = 0

    def __call__(self, line: str) -> None:
        service = getattr(line, "service", None)
        if not self.live:
            print(f"  {line}", file=sys.stderr, flush=True)
            return
        self._clear()
        if service is None:
            print(f"  {line}", file=sys.stderr)
        else:
            self.services[service] = line
        self._draw()

    def _clear(self) -> None:
        if self.drawn:
            sys.stderr.write(f"\x1b[{self.drawn}F\x1b[J")
        self.drawn = 0

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.started
        for text in self.services.values():
            sys.stderr.write(f"  \x1b[1m{text}\x1b[0m  ({elapsed:.0f}s)\n")
        self.drawn = len(self.services)
        sys.stderr.flush()


def progress_view() -> LiveView:
    inv: Invocation = state["invocation"]
    plain = (inv.compose.get("progress") in ("plain", "quiet", "json")
             or bool(os.environ.get("NO_COLOR")) or not sys.stderr.isatty())
    return LiveView(live=not plain)


def emit(as_json: bool, data: Callable[[], Any], text: Callable[[], str]) -> None:
    """Print the JSON or the text rendering (each built only when asked for)."""
    if as_json:
        print(jsontext.dumps(render.versioned(data())))
    else:
        out = text()
        if out:
            print(out)


def history(*, as_json: bool) -> None:
    """``history``: every revision, and the git commit that recorded each one."""
    from compose_rollback.context import history_with_commits as read_history

    revisions, recorded = read_history(context())
    emit(as_json, lambda: [{**r.to_json(), "recorded_in": recorded.get(r.number)}
                           for r in revisions],
         lambda: render.history(revisions, recorded=recorded))


def status(*, as_json: bool, orchestrator: str | None = None) -> None:
    """``status``: the current revision and, per service, what runs."""
    from compose_rollback import commands

    report = commands.status(context(orchestrator=orchestrator))
    emit(as_json, lambda: render.status_json(report), lambda: render.status(report))


# -- the one place where what happened becomes an exit code (README, "Exit codes") ------------
OUTCOME_CODES: dict[str, ExitCode] = {
    "deployed": ExitCode.OK,
    "dry_run": ExitCode.OK,
    "rolled_back": ExitCode.ROLLED_BACK,
    "failed": ExitCode.ROLLED_BACK,  # --no-rollback: failed, left in place as asked
    "unrestored": ExitCode.NEEDS_PERSON,
    "watch_interrupted": ExitCode.INTERRUPTED,  # deployed; the watch after it was cut short
}
#: Looked up along each error's class hierarchy, nearest class first (``cli`` adds the
#: option parser's own errors).
ERROR_CODES: dict[type[BaseException], ExitCode] = {
    BadInput: ExitCode.BAD_INPUT,
    DeployFailed: ExitCode.ROLLED_BACK,
    RestoreFailed: ExitCode.NEEDS_PERSON,
    WriteFailedAfterApply: ExitCode.NEEDS_PERSON,
    DockerFailed: ExitCode.NEEDS_PERSON,
    Locked: ExitCode.LOCKED,
    Unreachable: ExitCode.UNREACHABLE,
    Crashed: ExitCode.INTERNAL,
    KeyboardInterrupt: ExitCode.INTERRUPTED,
}


def exit_code(what: "BaseException | DeployResult | Outcome") -> ExitCode:
    """The exit code of an outcome or of an error; anything unforeseen is ``INTERNAL``."""
    if isinstance(what, str):
        return OUTCOME_CODES[what]
    if not isinstance(what, BaseException):
        return OUTCOME_CODES[what.outcome]
    for cls in type(what).__mro__:
        if cls in ERROR_CODES:
            return ERROR_CODES[cls]
    return ExitCode.INTERNAL


def invocation_of(argv: Sequence[str], *, as_plugin: bool) -> Invocation | int:
    """The argv split (docker's environment set from its flags), or the exit code of a
    malformed one, which is reported here."""
    try:
        invocation = split_argv(argv, as_plugin=as_plugin)
    except RollbackError as error:
        print(f"compose-rollback: {error.one_line()}", file=sys.stderr)
        return int(exit_code(error))
    for key, value in docker_environment(invocation.docker).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return invocation


def execute(invocation: Invocation, command: Callable[[], int | None]) -> int:
    """Run one command; the one place where errors become a message and an exit code."""
    state.clear()
    state["invocation"] = invocation
    prog = invocation.prog
    try:
        result = command()
        return int(result) if isinstance(result, int) else 0
    except KeyboardInterrupt as stop:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(exit_code(stop))
    except RollbackError as error:
        return _report(prog, error, invocation.args)
    except Exception as error:  # a bug outside any operation: say so, never "rolled back"
        crashed = Crashed(error, state="no operation was in progress, so nothing was changed")
        crashed.__cause__ = error
        return _report(prog, crashed, invocation.args)


def _report(prog: str, error: RollbackError, args: Sequence[str]) -> int:
    """One line on stderr (after the traceback, with --debug); the error's exit code."""
    if state.get("debug"):
        import traceback

        shown = error.__cause__ if isinstance(error, Crashed) and error.__cause__ else error
        traceback.print_exception(shown, file=sys.stderr)
    line = f"{prog}: {error.one_line()}"
    if isinstance(error, Crashed) and not state.get("debug"):
        command = " ".join(["--debug", *[a for a in args[:1] if not a.startswith("-")]])
        line += f"; this is a bug: to see the traceback, run `{prog} {command} …` again"
    print(line, file=sys.stderr)
    return int(exit_code(error))
