"""The command line: parse options, call one core function, render the result.

The only module that imports typer. Every outcome and error of the core arrives in
``runner.execute`` and leaves as one line on stderr and the exit code that ``exit_code`` (the
one place) names; the few invocations that need no option parser never come here (``quick``).
"""

import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from compose_rollback import helptext, render, runner
from compose_rollback.argv import Invocation
from compose_rollback.errors import ExitCode, SettingsError
from compose_rollback.runner import ERROR_CODES, OUTCOME_CODES, exit_code

if TYPE_CHECKING:
    from compose_rollback.deploy import DeployResult

__all__ = ["ERROR_CODES", "OUTCOME_CODES", "app", "click_command", "exit_code", "run"]

app = typer.Typer(
    help=helptext.APP, rich_markup_mode=None, add_completion=False, no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"],
                      "max_content_width": helptext.MAX_WIDTH},
)
# Typer vendors click in recent releases and depends on it in older ones: find its base error.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
# The option parser's own errors join the one table (the quick path never meets them).
ERROR_CODES.update({_CLICK_ERROR: ExitCode.BAD_INPUT, typer.Abort: ExitCode.INTERRUPTED})


class _Interrupted(Exception):
    """A Ctrl-C in a command, carried past typer (which makes it a silent exit 130)."""


def command(name: str) -> Callable[[Callable[..., None]], Any]:
    """Register a command under ``name`` with its help from ``helptext``."""
    def register(function: Callable[..., None]) -> Any:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                function(*args, **kwargs)
            except KeyboardInterrupt as stop:
                raise _Interrupted from stop

        return app.command(name, help=helptext.COMMANDS[name])(run)

    return register


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


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help=helptext.DEBUG)] = False,
) -> None:
    runner.state["debug"] = debug


@command("up")
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
    if pull not in (None, "always", "missing", "never"):
        raise SettingsError("--pull", f"expected always, missing or never, got {pull!r}")
    dry = dry_run or bool(runner.state["invocation"].compose.get("dry_run"))
    window = runner.duration(watch_for, "--watch")
    if window and no_rollback:
        raise SettingsError("--watch", "cannot be combined with --no-rollback: a watch reverts "
                            "on a failure; drop one of them")
    ctx, overrides = runner.context(wait_lock, orchestrator), _overrides(timeout, min_healthy)
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


@command("watch")
def watch_command(
    *, for_: Annotated[str | None, typer.Option(
        "--for", metavar="DURATION",
        help="Watch this long, then exit 0 (default: until interrupted).")] = None,
    timeout: TimeoutOpt = None, orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False,
) -> None:
    from compose_rollback import watch

    result = watch.watch(runner.context(orchestrator=orchestrator),
                         duration=runner.duration(for_, "--for"),
                         overrides=_overrides(timeout, None))
    _finish(result, as_json)


@command("revert")
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
    from compose_rollback import deploy

    result = deploy.revert(runner.context(wait_lock, orchestrator), to=to, message=message,
                           overrides=_overrides(timeout, min_healthy), commit=commit)
    _finish(result, as_json)


@command("history")
def history(*, as_json: JsonOpt = False) -> None:
    runner.history(as_json=as_json)  # (usually answered by `quick`, without typer)


@command("status")
def status(*, orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False) -> None:
    runner.status(as_json=as_json, orchestrator=orchestrator)  # (`quick` without options)


@command("diff")
def diff(
    a: Annotated[str | None, typer.Argument(
        metavar="A", help="From this revision (default: the previous good one).")] = None,
    b: Annotated[str | None, typer.Argument(
        metavar="B", help="To this revision (default: the current one).")] = None,
    *, as_json: JsonOpt = False,
) -> None:
    from compose_rollback import commands

    report = commands.diff(runner.context(), a=a, b=b)
    runner.emit(as_json, lambda: render.diff_json(report), lambda: render.diff(report))


@command("pin")
def pin(*, message: MessageOpt = "", wait_lock: WaitLockOpt = None,
        orchestrator: OrchestratorOpt = None, as_json: JsonOpt = False) -> None:
    from compose_rollback import commands

    revision = commands.pin(runner.context(wait_lock, orchestrator), message=message)
    runner.emit(as_json, revision.to_json,
          lambda: f"recorded revision {revision.number} ({len(revision.pins)} services)")


@command("prune")
def prune(
    *, keep: Annotated[int | None, typer.Option(
        metavar="N", help="Revisions to keep (default: x-rollback.keep or 20).")] = None,
    wait_lock: WaitLockOpt = None, as_json: JsonOpt = False,
) -> None:
    from compose_rollback import commands

    dropped = commands.prune(runner.context(wait_lock), keep=keep)
    runner.emit(as_json, lambda: {"pruned": dropped},
          lambda: f"pruned {len(dropped)} revision(s)"
          + (f": {', '.join(map(str, dropped))}" if dropped else ""))


@command("version")
def version(*, as_json: JsonOpt = False) -> None:
    from compose_rollback import commands
    from compose_rollback.engine import DockerOptions, Engine

    inv: Invocation = runner.state["invocation"]
    engine = Engine(docker=DockerOptions(**inv.docker))  # type: ignore[arg-type]
    found = commands.versions(engine)
    runner.emit(as_json, lambda: found.__dict__, lambda: f"compose-rollback {found.ours}\n"
          f"Compose          {found.compose}\nDocker engine    {found.engine}")


@command("schema")
def schema(
    command: Annotated[str | None, typer.Argument(
        metavar="COMMAND", help="The command whose output to describe (default: all).")] = None,
) -> None:
    from compose_rollback import schema as schemas

    found = schemas.document() if command is None else schemas.for_command(command)
    print(json.dumps(found, indent=2))


def _overrides(timeout: str | None, min_healthy: str | None) -> Any:
    from compose_rollback.deploy import Overrides

    return Overrides(timeout=runner.duration(timeout, "--timeout"),
                     min_healthy=runner.duration(min_healthy, "--min-healthy"))


def _finish(result: "DeployResult", as_json: bool) -> None:
    code = exit_code(result)
    runner.emit(as_json, lambda: render.deploy_json(result, exit_code=int(code)),
          lambda: render.deploy(result))
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def click_command() -> Any:
    """The click command Typer builds of ``app`` (shell completion reads its commands and
    options; typer stays in this module)."""
    from typer.main import get_command

    return get_command(app)


def run(invocation: Invocation) -> int:
    """Parse the invocation's arguments and run the command (``runner.execute``)."""
    return runner.execute(invocation, lambda: _invoke(invocation))


def _invoke(invocation: Invocation) -> int:
    prog = invocation.prog
    try:
        result = app(args=invocation.args, prog_name=prog, standalone_mode=False)
        return int(result) if isinstance(result, int) else 0
    except typer.Exit as done:
        return int(done.exit_code)
    except _Interrupted as stop:  # the line every interrupt gets (runner.execute)
        raise KeyboardInterrupt from stop.__cause__
    except typer.Abort as stop:
        raise KeyboardInterrupt from stop
    except _CLICK_ERROR as error:  # usage errors: one line, and where to look
        text = " ".join(error.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
        print(f"{prog}: {text}; see '{prog} --help'", file=sys.stderr)
        return int(exit_code(error))
