"""The revision store's files, opened without following links out of the store.

The store is committed and shared, so a pull request can turn any file in it into a symbolic
link (to ``~/.ssh/authorized_keys``, say). Every file the tool reads or writes there is opened
with ``O_NOFOLLOW`` (and each directory it enters, too): a link is refused, never read,
truncated or written through. New files get the mode the umask gives, like any file git
checks out.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from compose_rollback.errors import UnsafeStoreEntry

NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
LINK = "is a symbolic link, and compose-rollback never follows links in its store"


def open_nofollow(path: Path, flags: int, mode: int = 0o666, *, fix: str,
                  dir_fd: int | None = None) -> int:
    """``os.open`` that refuses a symbolic link as the last component (``UnsafeStoreEntry``
    naming the link and ``fix``). With ``dir_fd``, only the name of ``path`` is opened in
    that directory (the one already entered without following a link)."""
    target = path.name if dir_fd is not None else path
    try:
        return os.open(target, flags | NOFOLLOW, mode, dir_fd=dir_fd)
    except OSError as error:
        # ELOOP for a file; ENOTDIR when O_DIRECTORY met a link (to a directory or not).
        if error.errno == errno.ELOOP or (error.errno == errno.ENOTDIR
                                          and is_link(Path(target), dir_fd)):
            raise UnsafeStoreEntry(str(path), LINK, fix=fix) from error
        raise


def is_link(path: Path, dir_fd: int | None = None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(path, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def read_nofollow(path: Path, *, fix: str) -> bytes:
    """The bytes of a store file that must not be a link."""
    fd = open_nofollow(path, os.O_RDONLY, fix=fix)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def read_in(directory: Path, name: str, *, fix: str) -> bytes:
    """The bytes of ``directory/name``, where neither may be a link."""
    dir_fd = open_nofollow(directory, os.O_RDONLY | os.O_DIRECTORY, fix=fix)
    try:
        fd = open_nofollow(directory / name, os.O_RDONLY, fix=fix, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def unlink_in(directory: Path, names: list[str], *, fix: str) -> None:
    """Remove entries of ``directory`` (itself not a link); missing ones are fine."""
    try:
        dir_fd = open_nofollow(directory, os.O_RDONLY | os.O_DIRECTORY, fix=fix)
    except FileNotFoundError:
        return
    try:
        for name in names:
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                continue
    finally:
        os.close(dir_fd)


def atomic_write(path: Path, text: str) -> None:
    """Write via a new temp file in the same directory, fsync, rename, fsync the directory.

    The temp file is created with mode 0666 so the umask decides (``mkstemp`` would make every
    committed file 0600); ``O_EXCL | O_NOFOLLOW`` so nothing planted under its name is used.
    The rename replaces a link at ``path`` itself and never writes through it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
