"""The command line: parse options, call one core function, render the result.

The only module that imports typer. Every outcome and error of the core arrives here and
leaves as one line on stderr and the exit code that ``exit_code`` (the one place) names.
"""

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

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
    from compose_rollback.deploy import DeployResult, Outcome

app = typer.Typer(
    help="Deploy a Compose project with every image pinned to an immutable reference, gate it "
    "on health, and put the last good revision back when a gate fails.",
    rich_markup_mode=None, add_completion=False, no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
_state: dict[str, Any] = {}
# Typer vendors click in recent releases and depends on it in older ones: find its base error.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result.")]
MessageOpt = Annotated[str, typer.Option("--message", "-m", metavar="TEXT",
                                         help="Describe this revision.")]
TimeoutOpt = Annotated[str | None, typer.Option(
    metavar="DURATION",
    help="How long gates may take to pass (e.g. 5m). Default: x-rollback.timeout or 5m.")]
SoakOpt = Annotated[str | None, typer.Option(
    "--min-healthy", metavar="DURATION",
    help="How long everything must stay healthy (e.g. 10s, 0 to skip). "
    "Default: x-rollback.min_healthy or 10s.")]
OrchestratorOpt = Annotated[str | None, typer.Option(
    "--orchestrator", metavar="NAME",
    help="compose (one engine) or swarm (docker stack deploy). "
    "Default: x-rollback.orchestrator or compose.")]
CommitOpt = Annotated[bool | None, typer.Option(
    "--commit/--no-commit",
    help="Commit the revision store to git once the revision is decided (only the store's "
    "files). Default: x-rollback.git (commit or off).")]
WaitLockOpt = Annotated[str | None, typer.Option(
    "--wait-lock", metavar="DURATION",
    help="Wait this long for another operation's lock instead of failing.")]


def _duration(value: str | None, flag: str) -> float | None:
    if value is None:
        return None
    from compose_rollback.durations import parse_duration

    return parse_duration(value, path=flag)


def _ctx(wait_lock: str | None = None, orchestrator: str | None = None) -> Any:
    from compose_rollback.context import Context, store_dir
    from compose_rollback.project import ComposeOptions, resolve_project, working_directory

    inv: Invocation = _state["invocation"]
    project = resolve_project(options=ComposeOptions.from_flags(inv.compose),
                              cwd=working_directory(os.environ), environ=os.environ)
    from compose_rollback.revisions import RevisionStore

    if orchestrator not in (None, "compose", "swarm"):
        raise SettingsError("--orchestrator", f"expected compose or swarm, got {orchestrator!r}")

    def engine() -> Any:  # imported when a command first talks to docker (not `history`)
        from compose_rollback.engine import DockerOptions, Engine

        return Engine(docker=DockerOptions(**dict(inv.docker.items())))  # type: ignore[arg-type]

    return Context(project=project, store=RevisionStore(store_dir(project, os.environ)),
                   progress=_progress_view(), engine_factory=engine,
                   wait_lock=_duration(wait_lock, "--wait-lock") or 0.0,
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


def _progress_view() -> LiveView:
    inv: Invocation = _state["invocation"]
    plain = (inv.compose.get("progress") in ("plain", "quiet", "json")
             or bool(os.environ.get("NO_COLOR")) or not sys.stderr.isatty())
    return LiveView(live=not plain)


def _emit(as_json: bool, data: Callable[[], Any], text: Callable[[], str]) -> None:
    """Print the JSON or the text rendering (each built only when asked for)."""
    if as_json:
        print(jsontext.dumps(render.versioned(data())))
    else:
        out = text()
        if out:
            print(out)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    _state["debug"] = debug


@app.command()
def up(
    services: Annotated[list[str] | None, typer.Argument(
        metavar="SERVICE", help="Services to deploy (default: all).")] = None,
    *,
    build: Annotated[bool, typer.Option("--build", help="Build images before deploying.")]
    = False,
    pull: Annotated[str | None, typer.Option(
        metavar="POLICY", help="Pull images before deploying: always, missing or never.")] = None,
    message: MessageOpt = "", timeout: TimeoutOpt = None, min_healthy: SoakOpt = None,
    no_rollback: Annotated[bool, typer.Option(
        "--no-rollback", help="Leave a failed revision in place instead of reverting.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the revision and the plan; change nothing.")] = False,
    wait_lock: WaitLockOpt = None, orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False,
    commit: CommitOpt = None,
    watch_for: Annotated[str | None, typer.Option(
        "--watch", metavar="DURATION",
        help="Once deployed, keep every gate running this long and revert on a failure "
        "(0: no watch). Default: x-rollback.watch or no watch.")] = None,
) -> None:
    """Deploy with pinned images and health gates; revert to the last good revision on failure."""
    if pull not in (None, "always", "missing", "never"):
        raise SettingsError("--pull", f"expected always, missing or never, got {pull!r}")
    dry = dry_run or bool(_state["invocation"].compose.get("dry_run"))
    window = _duration(watch_for, "--watch")
    if window and no_rollback:
        raise SettingsError("--watch", "cannot be combined with --no-rollback: a watch reverts "
                            "on a failure; drop one of them")
    ctx, overrides = _ctx(wait_lock, orchestrator), _overrides(timeout, min_healthy)
    from compose_rollback.reading import Reading

    # compose reads the project while the deploy machinery below is imported (~0.1-0.25 s)
    reading = Reading(ctx.engine, ctx.project)
    from compose_rollback import deploy, watch

    result = deploy.up(ctx, services=services or [], build=build, pull=pull, message=message,
                       overrides=overrides, rollback=not no_rollback, dry_run=dry,
                       commit=commit, reading=reading)
    if not dry:
        result = watch.after_up(ctx, result, duration=0.0 if no_rollback else window,
                                overrides=overrides, commit=commit)
    _finish(result, as_json)


@app.command("watch")
def watch_command(
    *, for_: Annotated[str | None, typer.Option(
        "--for", metavar="DURATION",
        help="Watch this long, then exit 0 (default: until interrupted).")] = None,
    timeout: TimeoutOpt = None, orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False,
) -> None:
    """Keep every gate of the current revision running; revert to the previous good one on a
    failure. A revert or up started meanwhile ends the watch."""
    from compose_rollback import watch

    result = watch.watch(_ctx(orchestrator=orchestrator), duration=_duration(for_, "--for"),
                         overrides=_overrides(timeout, None))
    _finish(result, as_json)


@app.command()
def revert(
    *, to: Annotated[str | None, typer.Option(
        "--to", metavar="REV",
        help="Revision to restore: its number, or a git revision (HEAD~3, a commit id, a tag) "
        "of the commit that recorded it. Default: the last good one before the current.")
    ] = None,
    message: MessageOpt = "", timeout: TimeoutOpt = None, min_healthy: SoakOpt = None,
    wait_lock: WaitLockOpt = None, orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False,
    commit: CommitOpt = None,
) -> None:
    """Go back to the last good revision, or to any kept revision (recorded as a new one)."""
    from compose_rollback import deploy

    result = deploy.revert(_ctx(wait_lock, orchestrator), to=to, message=message,
                           overrides=_overrides(timeout, min_healthy), commit=commit)
    _finish(result, as_json)


@app.command()
def history(*, as_json: JsonOpt = False) -> None:
    """List revisions: number, time, status, message, images, and why failed ones failed."""
    from compose_rollback.context import history_with_commits as read_history

    revisions, recorded = read_history(_ctx())
    _emit(as_json, lambda: [{**r.to_json(), "recorded_in": recorded.get(r.number)}
                            for r in revisions],
          lambda: render.history(revisions, recorded=recorded))


@app.command()
def status(*, orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False) -> None:
    """Show the current revision and, per service, what runs, its health and any drift."""
    from compose_rollback import commands

    report = commands.status(_ctx(orchestrator=orchestrator))
    _emit(as_json, lambda: render.status_json(report), lambda: render.status(report))


@app.command()
def diff(
    a: Annotated[str | None, typer.Argument(
        metavar="A", help="From this revision (default: the previous good one).")] = None,
    b: Annotated[str | None, typer.Argument(
        metavar="B", help="To this revision (default: the current one).")] = None,
    *, as_json: JsonOpt = False,
) -> None:
    """Show image and configuration changes between two revisions."""
    from compose_rollback import commands

    report = commands.diff(_ctx(), a=a, b=b)
    _emit(as_json, lambda: render.diff_json(report), lambda: render.diff(report))


@app.command()
def pin(*, message: MessageOpt = "", wait_lock: WaitLockOpt = None,
        orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False) -> None:
    """Record what runs now as a revision, without deploying anything."""
    from compose_rollback import commands

    revision = commands.pin(_ctx(wait_lock, orchestrator), message=message)
    _emit(as_json, revision.to_json,
          lambda: f"recorded revision {revision.number} ({len(revision.pins)} services)")


@app.command()
def prune(
    *, keep: Annotated[int | None, typer.Option(
        metavar="N", help="Revisions to keep (default: x-rollback.keep or 20).")] = None,
    wait_lock: WaitLockOpt = None, as_json: JsonOpt = False,
) -> None:
    """Drop old revisions and their retention tags (never the current or last good one)."""
    from compose_rollback import commands

    dropped = commands.prune(_ctx(wait_lock), keep=keep)
    _emit(as_json, lambda: {"pruned": dropped},
          lambda: f"pruned {len(dropped)} revision(s)"
          + (f": {', '.join(map(str, dropped))}" if dropped else ""))


@app.command()
def version(*, as_json: JsonOpt = False) -> None:
    """Print the versions of compose-rollback, Compose and the Docker engine."""
    from compose_rollback import commands
    from compose_rollback.engine import DockerOptions, Engine

    inv: Invocation = _state["invocation"]
    engine = Engine(docker=DockerOptions(**inv.docker))  # type: ignore[arg-type]
    found = commands.versions(engine)
    _emit(as_json, lambda: found.__dict__, lambda: f"compose-rollback {found.ours}\n"
          f"Compose          {found.compose}\nDocker engine    {found.engine}")


@app.command()
def schema(
    command: Annotated[str | None, typer.Argument(
        metavar="COMMAND", help="The command whose output to describe (default: all).")] = None,
) -> None:
    """Print the JSON Schema of the --json output of COMMAND (or of every command)."""
    from compose_rollback import schema as schemas

    found = schemas.document() if command is None else schemas.for_command(command)
    print(json.dumps(found, indent=2))


def _overrides(timeout: str | None, min_healthy: str | None) -> Any:
    from compose_rollback.deploy import Overrides

    return Overrides(timeout=_duration(timeout, "--timeout"),
                     min_healthy=_duration(min_healthy, "--min-healthy"))


def _finish(result: "DeployResult", as_json: bool) -> None:
    code = exit_code(result)
    _emit(as_json, lambda: render.deploy_json(result, exit_code=int(code)),
          lambda: render.deploy(result))
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


# -- the one place where what happened becomes an exit code (README, "Exit codes") ------------
_OUTCOME_CODES: dict[str, ExitCode] = {
    "deployed": ExitCode.OK,
    "dry_run": ExitCode.OK,
    "rolled_back": ExitCode.ROLLED_BACK,
    "failed": ExitCode.ROLLED_BACK,  # --no-rollback: failed, left in place as asked
    "unrestored": ExitCode.NEEDS_PERSON,
    "watch_interrupted": ExitCode.INTERRUPTED,  # deployed; the watch after it was cut short
}
#: Looked up along each error's class hierarchy, nearest class first.
_ERROR_CODES: dict[type[BaseException], ExitCode] = {
    BadInput: ExitCode.BAD_INPUT,
    _CLICK_ERROR: ExitCode.BAD_INPUT,
    DeployFailed: ExitCode.ROLLED_BACK,
    RestoreFailed: ExitCode.NEEDS_PERSON,
    WriteFailedAfterApply: ExitCode.NEEDS_PERSON,
    DockerFailed: ExitCode.NEEDS_PERSON,
    Locked: ExitCode.LOCKED,
    Unreachable: ExitCode.UNREACHABLE,
    Crashed: ExitCode.INTERNAL,
    KeyboardInterrupt: ExitCode.INTERRUPTED,
    typer.Abort: ExitCode.INTERRUPTED,
}


def exit_code(what: "BaseException | DeployResult | Outcome") -> ExitCode:
    """The exit code of an outcome or of an error; anything unforeseen is ``INTERNAL``."""
    if isinstance(what, str):
        return _OUTCOME_CODES[what]
    if not isinstance(what, BaseException):
        return _OUTCOME_CODES[what.outcome]
    for cls in type(what).__mro__:
        if cls in _ERROR_CODES:
            return _ERROR_CODES[cls]
    return ExitCode.INTERNAL


def click_command() -> Any:
    """The click command Typer builds of ``app`` (shell completion reads its commands and
    options; typer stays in this module)."""
    from typer.main import get_command

    return get_command(app)


def main(argv: Sequence[str], *, as_plugin: bool) -> int:
    """Split the argv and run the command: the plugin's and the console script's entry."""
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
    return run(invocation)


def run(invocation: Invocation) -> int:
    """Run one command; the one place where errors become a message and an exit code."""
    _state.clear()
    _state["invocation"] = invocation
    prog = invocation.prog
    try:
        result = app(args=invocation.args, prog_name=prog, standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except typer.Exit as done:
        return int(done.exit_code)
    except (typer.Abort, KeyboardInterrupt) as stop:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(exit_code(stop))
    except _CLICK_ERROR as error:  # usage errors: one line, and where to look
        text = " ".join(error.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        print(f"{prog}: {text}; see '{prog} --help'", file=sys.stderr)
        return int(exit_code(error))
    except RollbackError as error:
        return _report(prog, error, invocation.args)
    except Exception as error:  # a bug outside any operation: say so, never "rolled back"
        crashed = Crashed(error, state="no operation was in progress, so nothing was changed")
        crashed.__cause__ = error
        return _report(prog, crashed, invocation.args)


def _report(prog: str, error: RollbackError, args: Sequence[str]) -> int:
    """One line on stderr (after the traceback, with --debug); the error's exit code."""
    if _state.get("debug"):
        shown = error.__cause__ if isinstance(error, Crashed) and error.__cause__ else error
        traceback.print_exception(shown, file=sys.stderr)
    line = f"{prog}: {error.one_line()}"
    if isinstance(error, Crashed) and not _state.get("debug"):
        command = " ".join(["--debug", *[a for a in args[:1] if not a.startswith("-")]])
        line += f"; this is a bug: to see the traceback, run `{prog} {command} …` again"
    print(line, file=sys.stderr)
    return int(exit_code(error))
