"""Exception types that carry data, and the named exit codes.

The core raises these and reports outcomes; exactly one place (``cli.exit_code``) turns an
error or an outcome into the exit code below, and ``cli.run`` prints the one-line message.
The errors say what happened, never which code that is.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class ExitCode(enum.IntEnum):
    """The exit codes of every command (DESIGN.md, behaviour contract)."""

    OK = 0
    ROLLED_BACK = 1  # the deploy failed; the last good revision was restored and is healthy
    BAD_INPUT = 2  # bad input or usage; nothing changed
    NEEDS_PERSON = 3  # failed and could not restore
    LOCKED = 4  # another operation holds the lock
    UNREACHABLE = 5  # Docker engine or registry unreachable; nothing changed
    INTERNAL = 70  # an unexpected error (a bug; EX_SOFTWARE of sysexits.h): see the journal
    INTERRUPTED = 130  # interrupted (Ctrl-C, SIGTERM) outside a deploy's own restore


class RollbackError(Exception):
    """Base class: a message for the user and a hint (the fix)."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        return f"{text}; {self.hint}" if self.hint else text


class BadInput(RollbackError):
    """The user's files, settings or arguments are wrong; nothing was changed."""


class SettingsError(BadInput):
    """An ``x-rollback`` setting is invalid; ``path`` names it (``x-rollback.timeout``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class OverlapImpossible(BadInput):
    """A service asks for start-first but two copies of it cannot run at once."""

    def __init__(self, service: str, path: str, blocker: str, *,
                 what: str = "start-first") -> None:
        fix = ("remove container_name" if blocker == "container_name" else
               "take the host port off and put a proxy in front (see README, Zero-downtime "
               "deploys)")
        has = ("a container_name" if blocker == "container_name"
               else f"a fixed host port (services.{service}.{blocker})")
        super().__init__(f"{path}: {what} needs two copies of {service} at once, but it "
                         f"has {has}", hint=f"{fix}, or use order: stop-first"
                         + (" without a canary" if what == "a canary" else ""))
        self.service = service
        self.path = path
        self.blocker = blocker


class ProjectUnresolved(BadInput):
    """Compose would not load the project this way; ``source`` names the flag, variable or
    file that says so (``COMPOSE_FILE (from /srv/shop/.env)``)."""

    def __init__(self, source: str, problem: str, *, hint: str = "") -> None:
        super().__init__(f"{source}: {problem}", hint=hint)
        self.source = source
        self.problem = problem


class UnknownRevision(BadInput):
    def __init__(self, revision: str, known: Sequence[int]) -> None:
        shown = ", ".join(str(r) for r in known[-10:]) or "none recorded yet"
        super().__init__(f"no revision {revision!r}", hint=f"known revisions: {shown}")
        self.revision = revision


class UnknownGitRevision(BadInput):
    """``revert --to <ref>``: the ref is not a number and names no commit that recorded a
    revision of this project."""

    def __init__(self, ref: str, problem: str) -> None:
        shown = ref if len(ref) <= 60 else ref[:57] + "..."
        super().__init__(f"--to {shown!r} {problem}",
                         hint="list the revisions and the commits that recorded them: "
                         "docker compose rollback history")
        self.ref = ref


class CorruptRevision(BadInput):
    """A revision file or the history does not match what was written."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"{path} is corrupted: {problem}",
            hint="restore it from git (git checkout -- <file>) or pick another revision",
        )
        self.path = path


class StoreNotWritable(BadInput):
    """The revision store cannot be written (read-only, full disk); nothing was changed."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"cannot write {path}: {problem}",
                         hint="make it writable or free some space, then try again; nothing "
                         "was changed")
        self.path = path


class WriteFailedAfterApply(RollbackError):
    """The containers were changed, then the store could not record it."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"the deploy ran but {path} could not be written: {problem}",
                         hint="free space or fix permissions, then run `docker compose rollback "
                         "status` and `revert` as needed")


class UnpinnableImages(BadInput):
    """Images that cannot be pinned to an immutable reference, all reported together."""

    def __init__(self, problems: dict[str, str]) -> None:
        listing = "; ".join(f"{svc}: {why}" for svc, why in sorted(problems.items()))
        super().__init__(
            f"cannot pin {len(problems)} image(s): {listing}",
            hint="build or pull them first (docker compose build / docker compose pull), "
            "or run with --build",
        )
        self.problems = problems


class MissingImage(BadInput):
    def __init__(self, ref: str, *, fix: str) -> None:
        super().__init__(f"image {ref} is not available locally", hint=fix)
        self.ref = ref


class Unreachable(RollbackError):
    """The Docker engine or a registry cannot be reached; nothing was changed."""


class DockerFailed(RollbackError):
    """A docker command failed for a reason that is not the user's input."""

    def __init__(self, command: Sequence[str], stderr: str, *, hint: str = "") -> None:
        last = [line for line in stderr.strip().splitlines() if line.strip()]
        detail = last[-1] if last else "no error output"
        super().__init__(f"`{' '.join(command)}` failed: {detail}", hint=hint)
        self.detail = detail
        self.command = list(command)
        self.stderr = stderr


class Locked(RollbackError):
    """Another operation holds the project lock (``holder`` describes it)."""

    def __init__(self, holder: str) -> None:
        super().__init__(
            f"another operation holds the lock: {holder}",
            hint="wait for it to finish, or pass --wait-lock DURATION",
        )
        self.holder = holder


class DeployFailed(RollbackError):
    """The new revision failed its gates and the last good revision is back and healthy."""

    def __init__(self, message: str, *, revision: int, restored: int | None) -> None:
        super().__init__(message)
        self.revision = revision
        self.restored = restored


class RestoreFailed(RollbackError):
    """The deploy failed and the previous state could not be brought back."""

    def __init__(self, message: str, *, revision: int) -> None:
        super().__init__(message)
        self.revision = revision


class UsageError(BadInput):
    """The command line itself is wrong (a global flag without its value, a missing word)."""

    def __init__(self, message: str, *, flag: str = "") -> None:
        super().__init__(message)
        self.flag = flag


class UnknownService(BadInput):
    """Services named on the command line that the project does not define."""

    def __init__(self, unknown: Sequence[str], known: Sequence[str]) -> None:
        super().__init__(f"no such service: {', '.join(unknown)}",
                         hint=f"services in this project: {', '.join(known) or 'none'}")
        self.unknown = list(unknown)
        self.known = list(known)


class NoEarlierRevision(BadInput):
    """``revert`` without ``--to`` and no earlier good revision to go back to."""

    def __init__(self, current: int | None) -> None:
        super().__init__("there is no earlier good revision to revert to",
                         hint="see `docker compose rollback history`, then --to REV")
        self.current = current


class NothingRunning(BadInput):
    """``pin`` found no running container of the project to record."""

    def __init__(self, project: str) -> None:
        super().__init__(f"no container of project {project} is running",
                         hint="start it first (docker compose up -d), or use rollback up")
        self.project = project


class NothingToWatch(BadInput):
    """``watch`` on a project that has no deployed (current) revision."""

    def __init__(self, project: str) -> None:
        super().__init__(f"project {project} has no deployed revision to watch",
                         hint="deploy one first: docker compose rollback up")
        self.project = project


class MissingVariable(BadInput):
    """A ``${NAME:?why}`` in a setting whose variable is unset (``why``: the file's text)."""

    def __init__(self, path: str, name: str, why: str) -> None:
        super().__init__(f"{path}: required variable {name} is missing: {why}")
        self.path = path
        self.name = name


class BadInputFromCompose(BadInput):
    """Compose itself rejected the project files (``detail``: the last line it printed)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"compose rejected the project: {detail}",
                         hint="run `docker compose config` to see the problem")
        self.detail = detail


class HookFailed(BadInput):
    """A ``pre_up`` hook exited non-zero, so nothing was deployed.

    ``command`` is the hook as written (``${VAR}`` kept, see ``interpolate.as_written``).
    """

    def __init__(self, hook: str, command: str, code: int) -> None:
        super().__init__(f"the {hook} hook `{command}` exited with {code}; nothing was deployed",
                         hint="fix the hook or the condition it checks")
        self.hook = hook
        self.command = command
        self.code = code


class Crashed(RollbackError):
    """An unexpected error (a bug): what it was and what state it left things in.

    ``state`` says it in words for the user; ``revision``/``step``/``applied`` are what the
    journal knew when it happened (``None``/``""``/``False`` when no operation was running).
    """

    def __init__(self, error: BaseException, *, state: str, revision: int | None = None,
                 step: str = "", applied: bool = False) -> None:
        detail = " ".join(str(error).split())[:300]
        self.error_type = type(error).__name__
        super().__init__(f"unexpected error: {self.error_type}" + (f": {detail}" if detail else ""),
                         hint=state)
        self.detail = detail
        self.state = state
        self.revision = revision
        self.step = step
        self.applied = applied


class LocalOnlyImages(BadInput):
    """Swarm: images with no registry digest, which other nodes could not pull; all listed,
    each with the command that pushes it."""

    def __init__(self, images: dict[str, str], pushes: dict[str, str]) -> None:
        listing = "; ".join(f"{svc}: {ref}" for svc, ref in sorted(images.items()))
        commands = "; ".join(pushes[svc] for svc in sorted(pushes))
        super().__init__(f"Swarm runs registry images only, and {len(images)} image(s) exist "
                         f"only on this engine: {listing}",
                         hint=f"push them ({commands}), point image: at the registry, and run "
                         "up again; nothing was changed")
        self.images = images
        self.pushes = pushes


class NotASwarm(BadInput):
    """``orchestrator: swarm`` on an engine that is not a Swarm manager."""

    def __init__(self, state: str) -> None:
        super().__init__(f"orchestrator swarm: this engine is not a Swarm manager (swarm state "
                         f"{state or 'unknown'})",
                         hint="run `docker swarm init` (or join a swarm as a manager), or use "
                         "--orchestrator compose; nothing was changed")
        self.state = state


class StackRejected(BadInput):
    """``docker stack deploy`` cannot take the revision as written."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem,
                         hint="change the compose file for Swarm (see README, Docker Swarm); "
                         "nothing was changed")
        self.path = path
        self.problem = problem


class UnsafeStoreEntry(BadInput):
    """The committed store would lead the tool out of it: a path in history.json that is not
    the revision's own file, a symbolic link where the store keeps a file, or a retention tag
    that is not this project's. Nothing is read, written or removed through it."""

    def __init__(self, path: str, problem: str, *, fix: str) -> None:
        super().__init__(f"{path}: {problem}", hint=f"{fix}; nothing was changed")
        self.path = path
        self.problem = problem


class Unfaithful(BadInput):
    """A revision applied alone would not reproduce what Compose runs for the project."""

    def __init__(self, fields: Sequence[str], *, included: bool, rejected: str = "") -> None:
        shown = ", ".join(fields[:6]) + (f" and {len(fields) - 6} more" if len(fields) > 6 else "")
        what = (f"compose rejects it when applied alone ({rejected})" if rejected else
                f"{shown} would differ when it is applied alone")
        hint = ("an included file's own env_file or .env variables, and values Compose parses "
                "before it fills in variables there, cannot be recorded without their values: "
                "set those variables in the project's .env or environment, or write the entry "
                "in long syntax" if included else
                "write the entries in long syntax (or without variables) and try again")
        super().__init__(
            f"a revision of this project would not reproduce what compose runs: {what}; "
            "nothing was recorded", hint=hint)
        self.fields = list(fields)


class NotReadableUninterpolated(BadInput):
    """Compose reads the project, but not with its variables left as references."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"compose cannot read this project without filling in its variables ({detail}), "
            "so no revision can keep them as references; nothing was recorded",
            hint="write that value without a variable (or in long syntax) and try again")
        self.detail = detail
