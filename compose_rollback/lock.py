"""The project lock and the operation journal (machine-local, git-ignored).

The lock is an ``flock`` on ``<store>/lock``: the kernel releases it when its holder dies, so
it can never be left stuck. The file's content only describes the holder, for the message a
second operation prints; a non-empty file found while the lock is free was left by a holder
that died, and the new holder says so. A holder that made the store removes it on release
(renamed away first, so it goes in one step), so a waiter checks after locking that the path
still names the file it locked.

Both files are opened with ``O_NOFOLLOW``: the store is committed, and a link planted as
``lock`` or ``journal.jsonl`` would otherwise make every command write through it.

The journal records each step of an operation before it is taken, so the next command can
tell that an operation was cut off and which revision it left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compose_rollback.errors import Locked
from compose_rollback.storefiles import atomic_write, open_nofollow, read_nofollow
from compose_rollback.testhooks import kill_point


def now_iso() -> str:
    """Now, in UTC, to the second: ``2026-12-07T21:43:40Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Holder:
    """Who holds the project's lock: process, host, command, and since when."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} running `{self.command}` since {self.since}"


def _read_holder(fd: int) -> Holder | None:
    """The holder described in the lock file (read from our descriptor, never the path)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "null")
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]),
                      str(data["since"]))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _machine_local_fix(path: Path) -> str:
    return f"it is machine-local state: remove the link (rm {path}) and run the command again"


@contextmanager
def project_lock(
    root: Path, *, command: str, wait: float = 0.0, notice: Any = None
) -> Iterator[Holder]:
    """Hold the project lock; raise ``Locked`` naming the holder if it is taken.

    A store directory this call had to create is removed again if nothing else was written
    into it, so a command that fails on bad input leaves no file behind.
    """
    fd, created = _acquire(root, deadline=time.monotonic() + wait)
    try:
        stale = _read_holder(fd)
        if stale is not None and notice is not None:
            notice(f"took over the lock left by {stale.describe()} (no longer running)")
        me = Holder(os.getpid(), os.uname().nodename, command, now_iso())
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me.__dict__).encode(), 0)
        try:
            yield me
        finally:
            os.ftruncate(fd, 0)
            if created and {e.name for e in root.iterdir()} == {"lock"}:
                _remove_store(root, created)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(root: Path, *, deadline: float) -> tuple[int, list[Path]]:
    """Open and ``flock`` the lock file; with it, the directories this call created.

    A holder that made the store removes the lock file on release, and the next operation
    creates a new one. A waiter that opened the old file gets its ``flock`` too, on a file
    nobody else will ever lock: so after locking, the path must still name the file locked,
    else the waiter opens the path again and waits on the new file.
    """
    path = root / "lock"
    created: list[Path] = []
    while True:
        created += [p for p in _make_dirs(root) if p not in created]
        try:
            fd = open_nofollow(path, os.O_RDWR | os.O_CREAT, 0o644,
                               fix=_machine_local_fix(path))
        except FileNotFoundError:
            continue  # a holder removed the store since: make it again
        try:
            _flock(fd, deadline)
            if _same_file(fd, path):
                return fd, sorted(created, key=lambda p: len(p.parts), reverse=True)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _make_dirs(root: Path) -> list[Path]:
    """Make ``root`` and its missing parents; the directories made by this call.

    Made means made by our own ``mkdir``, never "missing when we looked": a holder that made
    the store removes it on release at any moment, and the operation that makes it again
    must know, or nobody ever removes it. (``Path.mkdir(exist_ok=True)`` would not do either:
    it raises ``FileExistsError`` when the directory goes between its ``mkdir`` and its check.)
    """
    made: list[Path] = []
    todo = [root]
    while todo:
        try:
            todo[-1].mkdir()
        except FileNotFoundError:
            todo.append(todo[-1].parent)  # make the parent first, then this one again
            continue
        except FileExistsError:
            pass  # if a holder removes it now, opening the lock file fails and we come back
        else:
            made.append(todo[-1])
        todo.pop()
    return made


def _remove_store(root: Path, created: list[Path]) -> None:
    """Remove the store (holding only the lock file), then the parents this call made.

    The store is renamed away first, so that it goes in one step. Removed in place, it would
    stand without a lock file between the ``unlink`` and the ``rmdir``: an operation that came
    then would make a new lock file in it, the ``rmdir`` would fail, and that operation, which
    did not make the store, would never remove it. A waiter on the old lock file sees that
    the path no longer names it (``_acquire``) and starts again. Best effort: a store left
    behind holds nothing but an empty lock file.
    """
    grave = root.with_name(f".{root.name}.removed-{os.urandom(4).hex()}")
    with contextlib.suppress(OSError):
        root.rename(grave)
        (grave / "lock").unlink()
        grave.rmdir()
    for directory in created:
        if directory != root:
            with contextlib.suppress(OSError):  # another project's store may be in it
                directory.rmdir()


def _flock(fd: int, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _read_holder(fd)
                raise Locked(holder.describe() if holder else "an unknown process") from None
            time.sleep(0.1)


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = path.lstat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)


class Journal:
    """Append-only record of the steps of the operation in progress."""

    def __init__(self, root: Path) -> None:
        self.path = root / "journal.jsonl"

    @kill_point  # test-only, off unless COMPOSE_ROLLBACK_TEST_KILL_AT is set
    def write(self, step: str, **data: Any) -> None:
        record = {"step": step, "time": now_iso(), "pid": os.getpid(), **data}
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a+b", opener=self._opener) as handle:
            if handle.tell() > 0:  # a record torn by a crash must not swallow this one
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = "\n" + line
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def _opener(self, path: str, flags: int) -> int:
        return open_nofollow(Path(path), flags, fix=_machine_local_fix(self.path))

    def unfinished(self) -> list[dict[str, Any]]:
        """The records of an operation that began and never ended (empty if none)."""
        try:
            raw = read_nofollow(self.path, fix=_machine_local_fix(self.path))
            lines = raw.decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        records: list[dict[str, Any]] = []
        for line in lines:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a torn last line from a crash mid-write
            if isinstance(record, dict):
                records.append(record)
        if not records or records[-1].get("step") == "end":
            return []
        starts = [i for i, r in enumerate(records) if r.get("step") == "begin"]
        return records[starts[-1]:] if starts else records

    def begin(self, operation: str, **data: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.close(open_nofollow(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                               fix=_machine_local_fix(self.path)))
        self.write("begin", operation=operation, **data)

    def end(self, **data: Any) -> None:
        self.write("end", **data)


# -- watch markers ------------------------------------------------------------------------------
# A watcher does not hold the lock while it watches (a manual `revert` must not wait for it):
# it leaves a marker beside the lock instead, and an operation that changes what runs notes
# itself in each marker and sends the watcher SIGTERM. Named ``*.tmp`` so that the
# ``.gitignore`` every store already has keeps them out of git.
_MARKER = "watch-{pid}.tmp"


def marker_path(root: Path) -> Path:
    """This process's watch marker in the store ``root``."""
    return root / _MARKER.format(pid=os.getpid())


@contextmanager
def watch_marker(root: Path, *, revision: int) -> Iterator[Path]:
    """Announce this process as the watcher of ``revision`` until the block ends. Removed
    even when the write is cut short: the marker is visible from its rename on, before the
    write's last fsync returns."""
    path = marker_path(root)
    try:
        atomic_write(path, json.dumps({"pid": os.getpid(), "revision": revision,
                                       "since": now_iso()}))
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


def superseded_by(marker: Path) -> str | None:
    """The operation that ended this watch (None: nothing did)."""
    try:
        data = json.loads(read_nofollow(marker, fix=_machine_local_fix(marker)))
    except (OSError, ValueError):
        return None
    by = data.get("superseded_by") if isinstance(data, dict) else None
    return str(by) if by else None


def end_watches(root: Path, *, by: str) -> list[int]:
    """Tell every watcher of the project (other than this process) that ``by`` supersedes
    what it watches; the pids told. Called with the lock held, before anything changes."""
    told = []
    for marker in sorted(root.glob(_MARKER.format(pid="*"))):
        try:
            data = json.loads(read_nofollow(marker, fix=_machine_local_fix(marker)))
            pid = int(data["pid"])
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if pid == os.getpid():
            continue
        if not _is_ours(pid):  # left by a watcher that died (its pid may be reused)
            with contextlib.suppress(OSError):
                marker.unlink()
            continue
        try:  # in place, never created: a watch that ended meanwhile is left alone
            fd = open_nofollow(marker, os.O_WRONLY | os.O_TRUNC, fix=_machine_local_fix(marker))
        except FileNotFoundError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({**data, "superseded_by": by}))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # the watcher takes it as an interrupt, reads the note
            told.append(pid)
    return told


def _is_ours(pid: int) -> bool:
    try:
        return b"rollback" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
