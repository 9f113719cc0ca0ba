"""Issue 10: a ``--wait-lock`` waiter and a holder that unlinks the lock file can never both
hold the lock.

A holder that created the store removes the lock file when it releases. A waiter that had
opened that file gets its ``flock`` afterwards, on a file no one else will ever lock, while a
third operation creates a new lock file at the same path and locks that: two holders at once,
unless the waiter checks that the path still names the file it locked.

Each holder is a real process; the one interleaving that breaks the lock is set up step by
step, each step waited for by its visible effect (a log line, an open descriptor in
``/proc``), never by a sleep.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.helpers import wait_for

REPO = Path(__file__).parents[2]

# A holder: take the lock (waiting up to argv[3] s), log "enter", hold until a line arrives
# on stdin, log "leave". With argv[4] == "count", instead take it argv[5] times in a row and
# do a read-modify-write of a shared counter each time.
HOLDER = r"""
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[6])
from compose_rollback.errors import Locked
from compose_rollback.lock import project_lock
root, name, wait, mode, rounds = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), \
    sys.argv[4], int(sys.argv[5])
log = root.parent / "log"

def note(word):
    with open(log, "a") as handle:
        handle.write(f"{word} {name}\n")

def inside():
    note("enter")
    # O_EXCL: a second holder at the same moment fails here, whatever the timing.
    os.close(os.open(root.parent / "inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    if mode == "count":
        counter = root.parent / "counter"
        counter.write_text(str(int(counter.read_text()) + 1))
    else:
        sys.stdin.readline()
    note("leave")
    os.unlink(root.parent / "inside")

try:
    for _ in range(rounds):
        with project_lock(root, command=name, wait=wait):
            inside()
except Locked:
    note("locked")
"""


def _holder(tmp_path: Path, name: str, *, wait: float, mode: str = "hold",
            rounds: int = 1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "store"), name, str(wait), mode,
         str(rounds), str(REPO)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _log(tmp_path: Path) -> list[str]:
    path = tmp_path / "log"
    return path.read_text().splitlines() if path.exists() else []


def _open_files(pid: int) -> set[tuple[int, int]]:
    """(device, inode) of every file the process has open."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            info = fd.stat()  # the open file itself, not the /proc link
        except OSError:
            continue  # closed meanwhile
        found.add((info.st_dev, info.st_ino))
    return found


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _assert_one_holder_at_a_time(lines: list[str]) -> None:
    holder = None
    for line in lines:
        word, name = line.split()
        if word == "enter":
            assert holder is None, f"{name} entered while {holder} held the lock: {lines}"
            holder = name
        elif word == "leave":
            assert holder == name, lines
            holder = None


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    except BrokenPipeError:
        pass  # it was refused the lock and has ended


def _finish(proc: subprocess.Popen[str]) -> None:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def _b_settled(tmp_path: Path, b: subprocess.Popen[str], old: tuple[int, int] | None) -> bool:
    """B holds, or B waits on the file now at the path (not the one A removed)."""
    now = _inode(tmp_path / "store" / "lock")
    return "enter B" in _log(tmp_path) or (
        now is not None and now != old and now in _open_files(b.pid))


def _one_round(tmp_path: Path) -> list[str]:
    """A holds; B waits on A's file; A releases (and removes it); C comes: the log."""
    lock = tmp_path / "store" / "lock"
    for leftover in ("log", "inside"):
        (tmp_path / leftover).unlink(missing_ok=True)
    a = _holder(tmp_path, "A", wait=0)  # creates the store, so it unlinks on release
    wait_for(lambda: "enter A" in _log(tmp_path), timeout=30, what="A holding the lock")
    old = _inode(lock)
    b = _holder(tmp_path, "B", wait=60)
    wait_for(lambda: old in _open_files(b.pid), timeout=30, what="B waiting on A's lock file")
    _release(a)
    _finish(a)  # A made the store, so it has removed its lock file (and the store) by now
    c = _holder(tmp_path, "C", wait=0)  # makes a new lock file, unless B made it first
    wait_for(lambda: {"enter C", "locked C"} & set(_log(tmp_path)), timeout=30,
             what="C having tried")
    wait_for(lambda: _b_settled(tmp_path, b, old), timeout=30,
             what="B holding, or waiting on the new lock file")
    for proc in (b, c):
        _release(proc)
    lines = _log(tmp_path)
    _assert_one_holder_at_a_time(lines)
    for proc in (b, c):
        _finish(proc)
    return _log(tmp_path)


def test_a_waiter_on_an_unlinked_lock_file_never_holds_beside_a_new_holder(
        tmp_path: Path) -> None:
    for round_ in range(8):
        lines = _one_round(tmp_path)
        _assert_one_holder_at_a_time(lines)
        assert lines.count("enter B") == 1, (round_, lines)  # and B got it in the end


def test_holders_that_remove_the_store_each_time_exclude_each_other(tmp_path: Path) -> None:
    """Three processes take the lock 25 times each; every holder made the store, so every
    release unlinks the lock file. No update of the shared counter is lost."""
    (tmp_path / "counter").write_text("0")
    procs = [_holder(tmp_path, name, wait=120, mode="count", rounds=25) for name in "XYZ"]
    for proc in procs:
        _finish(proc)
    lines = _log(tmp_path)
    _assert_one_holder_at_a_time(lines)
    assert (tmp_path / "counter").read_text() == "75", lines
    assert not (tmp_path / "store").exists()
