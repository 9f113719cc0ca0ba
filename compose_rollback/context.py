"""What every command works on: the project, its revision store, the engine, a progress sink."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compose_rollback.errors import (
    Crashed,
    Locked,
    RollbackError,
    SettingsError,
    StoreNotWritable,
    WriteFailedAfterApply,
)
from compose_rollback.lock import Journal, end_watches, now_iso, project_lock
from compose_rollback.project import Project
from compose_rollback.redact import Redactor
from compose_rollback.revisions import Revision, RevisionStore

if TYPE_CHECKING:
    from compose_rollback.engine import Engine
    from compose_rollback.rollout.report import StepReport

Progress = Callable[[str], None]
#: Operations that change what runs: each ends the watch of the revision they replace.
SUPERSEDES = ("up", "revert", "pin")


@dataclass
class Context:
    """What every command works with: the project, its store, the progress output, the engine."""

    project: Project
    store: RevisionStore
    progress: Progress
    engine_factory: Callable[[], Engine]
    wait_lock: float = 0.0
    #: ``--orchestrator``; None: ``x-rollback.orchestrator`` of the compose files, or compose
    orchestrator: str | None = None
    applied: bool = False  # containers were touched by this operation
    _engine: Engine | None = None
    #: Values of the project's variables, masked in all an operation stores or sends
    #: (deploy adds them once it has read the project); progress lines are masked too.
    secrets: Redactor = field(default_factory=Redactor)
    #: Each rollout step of this operation and how it ended (the way back's included).
    steps: list[StepReport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.progress = self.secrets.progress(self.progress)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine

    def orchestrator_name(self) -> str:
        """``compose`` or ``swarm``: the flag, else the compose files' setting (read once)."""
        if self.orchestrator is None:
            found = _top_setting(self.project.files, "orchestrator")
            if found not in (None, "compose", "swarm"):
                raise SettingsError("x-rollback.orchestrator",
                                    f"expected compose or swarm, got {found!r}")
            self.orchestrator = str(found or "compose")
        return self.orchestrator

    @property
    def journal(self) -> Journal:
        return Journal(self.store.root)

    @contextmanager
    def locked(self, command: str) -> Iterator[None]:
        """Hold the project lock, first noticing an operation that was cut off.

        A store that cannot be written (read-only, full disk) is one line and exit 2 while no
        container was touched; after that it needs a person (exit 3).
        """
        try:
            with project_lock(self.store.root, command=command, wait=self.wait_lock,
                              notice=self.progress):
                recover(self)
                if command in SUPERSEDES:  # before anything changes: a watcher must not act
                    end_watches(self.store.root, by=command)
                try:
                    yield
                except (RollbackError, OSError):
                    raise
                except Exception as error:  # a bug: close the journal while still locked
                    raise crashed(self, error) from error
        except OSError as error:
            where = error.filename or self.store.root
            problem = error.strerror or str(error)
            with contextlib.suppress(OSError):  # close what the journal opened, if it can
                if self._nothing_left_pending():
                    self.journal.end(aborted=problem)
            if self.applied:
                raise WriteFailedAfterApply(str(where), problem) from error
            raise StoreNotWritable(str(where), problem) from error

    def _nothing_left_pending(self) -> bool:
        """Whether the operation the journal holds open left no revision ``pending``: one it
        did must stay in the open journal, so the next command marks it interrupted."""
        try:
            records = self.journal.unfinished()
            number = records[0].get("revision") if records else None
            return bool(records) and not any(r.number == number and r.status == "pending"
                                             for r in self.store.revisions())
        except RollbackError:
            return False


def history(ctx: Context) -> list[Revision]:
    """Every revision, oldest first (after noticing an operation that was cut off)."""
    notice_interrupted(ctx)
    return ctx.store.revisions()


def history_with_commits(ctx: Context) -> tuple[list[Revision], dict[int, str]]:
    """Every revision, and the git commit that recorded each one (where one did)."""
    from compose_rollback.gitstore import recorded_in

    revisions = history(ctx)
    recorded = recorded_in(directory=ctx.project.directory, store=ctx.store.root) \
        if revisions else {}
    return revisions, recorded


def notice_interrupted(ctx: Context) -> None:
    """For read-only commands: recover a cut-off operation unless one is running right now."""
    if not os.path.lexists(ctx.store.root / "journal.jsonl"):
        return  # (a link there is refused by the journal, not taken for "no journal")
    try:
        with project_lock(ctx.store.root, command="check", notice=ctx.progress):
            recover(ctx)
    except Locked:
        return  # an operation is in progress: its pending revision is legitimately pending
    except OSError:
        return  # a read-only store: reading still works, recovery waits for a writer


def recover(ctx: Context) -> int | None:
    """Mark the revision of an operation that never finished as ``interrupted``."""
    records = ctx.journal.unfinished()
    if not records:
        return None
    number = records[0].get("revision")
    last = records[-1].get("step", "begin")
    for record in records:
        if isinstance(record.get("compose_pid"), int):
            _wait_for_compose(ctx, record["compose_pid"])
    if isinstance(number, int):
        revisions = ctx.store.revisions()
        if any(r.number == number and r.status == "pending" for r in revisions):
            ctx.store.update(number, status="interrupted", finished=now_iso(),
                             reason=f"the operation was cut off (last step: {last})")
            ctx.progress(f"revision {number} was interrupted during '{last}' and is now "
                         "marked interrupted")
    ctx.journal.end(recovered=number)
    return number if isinstance(number, int) else None


def crashed(ctx: Context, error: Exception) -> Crashed:
    """An unexpected error cut the operation short: record where, and say so.

    The revision it left ``pending`` is marked ``interrupted`` with the error as its reason
    and the journal ends with a ``crashed`` record (the step, whether containers were
    touched), so no later command mistakes the state for a clean deploy or rollback.
    """
    what = f"{type(error).__name__}: {' '.join(str(error).split())[:200]}".rstrip(": ")
    records = ctx.journal.unfinished()
    if not records:  # before the first step or after the last one
        state = ("the deploy had finished before the error (see `docker compose rollback "
                 "history`)" if ctx.applied else "nothing was recorded or deployed")
        return Crashed(error, state=state, applied=ctx.applied)
    number = records[0].get("revision")
    revision = number if isinstance(number, int) else None
    step = str(records[-1].get("step", "begin"))
    marked = False
    try:
        if revision is not None and any(r.number == revision and r.status == "pending"
                                        for r in ctx.store.revisions()):
            ctx.store.update(revision, status="interrupted", finished=now_iso(),
                             reason=f"stopped by an unexpected error during '{step}': {what}")
            marked = True
        ctx.journal.end(crashed=what, during=step, revision=revision, applied=ctx.applied)
    except (OSError, RollbackError):
        pass  # the journal stays open: the next command marks the revision interrupted
    where = f"revision {revision}" if revision is not None else "the operation"
    state = f"{where} stopped during '{step}'" + (" and is marked interrupted" if marked else "")
    state += ("; containers may be half-changed: check `docker compose rollback status`, then "
              "`revert` as needed" if ctx.applied else "; no container was changed")
    return Crashed(error, state=state, revision=revision, step=step, applied=ctx.applied)


def _wait_for_compose(ctx: Context, pid: int, *, limit: float = 120.0) -> None:
    """A killed operation may leave its ``docker compose up`` running: let it finish first."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"compose" not in cmdline:
        return  # the pid was reused by something else
    ctx.progress(f"waiting for the docker compose (pid {pid}) of the cut-off operation")
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)


def store_dir(project: Project, environ: Mapping[str, str]) -> Path:
    """``COMPOSE_ROLLBACK_DIR``, else ``x-rollback.dir`` of the compose files, else .rollback.

    Like compose's own ``COMPOSE_*`` variables, ``COMPOSE_ROLLBACK_DIR`` may come from the
    environment or the project's ``.env``; ``x-rollback.dir`` is interpolated as compose
    interpolates the file (``${VAR:-default}``, with the ``.env`` variables).
    """
    configured = (environ.get("COMPOSE_ROLLBACK_DIR")
                  or project.environment.get("COMPOSE_ROLLBACK_DIR") or _dir_setting(project))
    base = Path(configured) if configured else Path(".rollback")
    if not base.is_absolute():
        base = project.directory / base
    return base / project.name


def _dir_setting(project: Project) -> str | None:
    """Read ``x-rollback.dir`` without calling compose (fast commands need no engine)."""
    found: str | None = None
    for value in _settings(project.files, "dir"):
        if not isinstance(value, str):
            raise SettingsError("x-rollback.dir", "expected a directory path")
        found = value
    if found is None or "$" not in found:
        return found
    from compose_rollback.dotenv import TemplateError, substitute

    try:
        value = substitute(found, project.environment.get)
    except TemplateError as error:
        raise SettingsError("x-rollback.dir", str(error)) from None
    if not value.strip():
        raise SettingsError("x-rollback.dir", f"{found} is empty once interpolated; set the "
                            "variable or give it a default (${VAR:-.rollback})")
    return value


def _may_set(text: str, key: str) -> bool:
    """Whether a compose file's text can set ``x-rollback.<key>``: it names ``x-rollback`` and
    has ``key`` as a mapping key (block or flow style, quoted, or an explicit ``? key``). Read-
    only commands ask for one key, and most files have an ``x-rollback`` block without it: no
    YAML parser for them (importing it is ~40 ms of ``history``'s start-up)."""
    if "x-rollback" not in text or key not in text:
        return False
    import re

    return re.search(rf"(?:^|[\s{{,?'\"]){re.escape(key)}['\"]?\s*:", text, re.M) is not None


def _settings(files: tuple[Path, ...], key: str) -> Iterator[object]:
    """``x-rollback.<key>`` of each compose file that sets it, in file order."""
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if not _may_set(text, key):
            continue  # the common case needs no YAML parser
        from compose_rollback.overlay import OverlayError, load_yaml

        try:
            data: Any = load_yaml(text)
        except OverlayError:
            continue
        block = data.get("x-rollback") if isinstance(data, dict) else None
        if isinstance(block, dict) and block.get(key) is not None:
            yield block[key]


def _top_setting(files: tuple[Path, ...], key: str) -> object:
    """One key of the top-level ``x-rollback`` of the compose files (the last file wins)."""
    values = list(_settings(files, key))
    return values[-1] if values else None


@dataclass(frozen=True)
class Author:
    """Who made a revision, where, and the git commit of the compose files then."""

    user: str
    host: str
    git: str
    created: str


def author(project: Project) -> Author:
    """Who and where: user, host, and the git commit of the compose files when there is one."""
    import getpass  # (only for what writes a revision)

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Author(user=user, host=os.uname().nodename, git=_git_commit(project),
                  created=now_iso())


def _git_commit(project: Project) -> str:
    from compose_rollback.gitstore import source_commit

    return source_commit(directory=project.directory, files=project.files)


def commit_wanted(project: Project, flag: bool | None) -> bool:
    """``--commit``/``--no-commit``, else ``x-rollback.git`` of the compose files (read without
    compose, as ``revert`` reads no project model)."""
    if flag is not None:
        return flag
    from compose_rollback.settings import git_mode

    return git_mode(_top_setting(project.files, "git") or "off", path="x-rollback.git") \
        == "commit"
