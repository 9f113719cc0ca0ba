"""Bad-input rows: the store on disk (read-only, full, corrupted, edited by hand)."""

from __future__ import annotations

import errno
import math
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from bad_input_table import Row, World, cannot, new_release_then, then
from robust_helpers import FAST

from compose_rollback.errors import ExitCode


def _chattr(world: World, path: Path, *, recursive: bool) -> None:
    if shutil.which("chattr") is None:
        cannot("chattr is not installed: cannot make a directory read-only for root")
    flags = ["-R"] if recursive else []
    done = subprocess.run(["chattr", *flags, "+i", str(path)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        cannot(f"chattr +i is not supported here: {done.stderr.strip()}")
    world.later.callback(subprocess.run, ["chattr", *flags, "-i", str(path)], check=False)


def _immutable_revisions(world: World) -> None:
    _chattr(world, world.state / "revisions", recursive=False)


def _immutable_state(world: World) -> None:
    _chattr(world, world.state, recursive=True)


def _mount(world: World, target: Path, *options: str, source: str = "tmpfs",
           kind: str | None = "tmpfs") -> None:
    args = ["mount", *(["-t", kind] if kind else []), *options, source, str(target)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        cannot(f"cannot mount here ({' '.join(args)}): {done.stderr.strip()}")
    world.later.callback(subprocess.run, ["umount", "-l", str(target)], check=False)


def _read_only_mount(world: World) -> None:
    target = world.project.dir / ".rollback"
    _mount(world, target, "--bind", source=str(target), kind=None)
    done = subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        cannot(f"cannot remount read-only: {done.stderr.strip()}")


def _full_disk(world: World) -> None:
    """A tiny tmpfs as ``.rollback`` holding the store's files, then filled to the last byte."""
    target = world.project.dir / ".rollback"
    saved = world.project.dir.parent / f"{world.project.name}-saved-store"
    shutil.copytree(target, saved, symlinks=True)
    pages = sum(math.ceil(p.stat().st_size / 4096) for p in saved.rglob("*") if p.is_file())
    _mount(world, target, "-o", f"size={max(16, 4 * (pages + 4))}k,mode=0755")
    shutil.copytree(saved, target, symlinks=True, dirs_exist_ok=True)
    try:
        with open(target / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
                os.fsync(filler.fileno())
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    with pytest.raises(OSError, match="No space"), open(target / "probe", "wb") as probe:
        probe.write(b"\0" * 4096)
        probe.flush()
        os.fsync(probe.fileno())


def _corrupt_overlay(number: int) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.overlay(number)
        path.write_text(path.read_text().replace("pull_policy: never", "pull_policy: always"))

    return tweak


def _write_history(text: str | bytes) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.state / "history.json"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return tweak


def _truncate_history(world: World) -> None:
    path = world.state / "history.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _history_edit(old: str, new: str, *, count: int = 1) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.state / "history.json"
        text = path.read_text()
        assert old in text, (old, text)
        path.write_text(text.replace(old, new, count))

    return tweak


def _delete_overlay(number: int) -> Callable[[World], None]:
    return lambda world: world.overlay(number).unlink()


def _symlink_overlay(number: int) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.overlay(number)
        path.unlink()
        path.symlink_to("/etc/passwd")

    return tweak


STORE_ROWS: list[Row] = [
    # -- the store on disk ----------------------------------------------------------------------
    Row("read-only-revisions-dir", "one", ExitCode.BAD_INPUT,
        ("revisions", "permi|read-only"),
        new_release_then(("up", *FAST), _immutable_revisions)),
    Row("read-only-state-dir", "one", ExitCode.BAD_INPUT, ("\\.rollback", "permi|read-only"),
        new_release_then(("up", *FAST), _immutable_state)),
    Row("read-only-mount", "one", ExitCode.BAD_INPUT, ("\\.rollback", "read-only"),
        new_release_then(("up", *FAST), _read_only_mount)),
    Row("disk-full", "one", ExitCode.BAD_INPUT, ("\\.rollback", "space"),
        new_release_then(("up", *FAST), _full_disk)),
    Row("corrupt-overlay-revert", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        then(("revert", "--to", "1", *FAST), _corrupt_overlay(1))),
    Row("corrupt-current-overlay-up", "two", ExitCode.BAD_INPUT, (r"0002\.yaml",),
        new_release_then(("up", *FAST), _corrupt_overlay(2))),
    Row("corrupt-overlay-diff", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        then(("diff", "1", "2"), _corrupt_overlay(1))),
    Row("deleted-overlay-revert", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        then(("revert", "--to", "1", *FAST), _delete_overlay(1))),
    Row("symlinked-overlay-revert", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        then(("revert", "--to", "1", *FAST), _symlink_overlay(1))),
    Row("history-not-json", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("history",), _write_history("{not json"))),
    Row("history-not-json-up", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        new_release_then(("up", *FAST), _write_history("{not json"))),
    Row("history-not-json-revert", "two", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("revert", *FAST), _write_history("{not json"))),
    Row("history-not-json-status", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("status",), _write_history("{not json"))),
    Row("history-binary", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("history",), _write_history(b"\xff\xfe\x00garbage\x80"))),
    Row("history-wrong-shape", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("history",), _write_history("[]"))),
    Row("history-truncated", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("history",), _truncate_history)),
    Row("history-unknown-status", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("revert", "--to", "1", *FAST),
              _history_edit('"status": "deployed"', '"status": "exploded"'))),
    Row("history-duplicate-numbers", "two", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("history",), _history_edit('"number": 2', '"number": 1'))),
    Row("history-future-format", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        then(("history",), _history_edit('"format": 1', '"format": 99'))),
]
