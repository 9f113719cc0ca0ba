"""Issue 10: the revision store is committed and shared, so its files are input and can be
hostile (a pull request can change them). With the engine seam replaced:

- a path in history.json that is not the revision's own ``revisions/<n>.yaml`` (``../..``,
  absolute, another revision's file) is never removed by ``prune`` nor applied by ``revert``;
  a revision file, or ``revisions/`` itself, that is a symbolic link is refused too; the
  other revisions stay usable;
- ``prune`` removes a retention tag read from the history only if it is this project's, and a
  revert never points a tag the history names at an image unless it is a retention tag of
  that image;
- ``lock`` and ``journal.jsonl`` are never followed when they are links, even by ``history``
  and ``status``;
- written files get the mode the umask gives (0644 under umask 022);
- ``pin`` is journaled: cut off half-way, its revision does not stay ``pending``.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from compose_rollback import commands, deploy
from compose_rollback.context import Context, history
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.errors import DockerFailed, StoreNotWritable, UnsafeStoreEntry
from compose_rollback.lock import Journal, project_lock
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
NEXT = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)
OURS = "reg/app:rollback-shop-111111111111"


@pytest.fixture
def ctx(tmp_path: Path) -> tuple[Context, FakeEngine]:
    engine = FakeEngine(model={"name": "shop", "services": {"web": {"image": "reg/app:latest"}}},
                        images={"reg/app:latest": GOOD})
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("services: {}\n")  # the fake engine supplies the model itself
    project = Project(name="shop", directory=tmp_path, files=(compose_file,))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    return context, engine


def _up(context: Context) -> None:
    result = deploy.up(context, services=[], build=False, pull=None, message="m",
                       overrides=FAST, rollback=True, dry_run=False)
    assert result.outcome == "deployed", result


def _three_revisions(ctx: tuple[Context, FakeEngine]) -> Context:
    """Revisions 1 (superseded), 2 (superseded, the last good), 3 (deployed)."""
    context, _ = ctx
    for _ in range(3):
        _up(context)
    return context


def _edit(store: RevisionStore, number: int, **fields: Any) -> bytes:
    """Hand-edit one revision of history.json (as a pull request could); the new bytes."""
    data = json.loads(store.history_path.read_text())
    for entry in data["revisions"]:
        if entry["number"] == number:
            entry.update(fields)
    store.history_path.write_text(json.dumps(data, indent=2))
    return store.history_path.read_bytes()


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under ``root``: file bytes, or where a link points."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = f"-> {path.readlink()}"
        elif path.is_file() and path.name not in ("lock", "journal.jsonl"):
            out[key] = path.read_bytes()
    return out


# -- paths in history.json --------------------------------------------------------------------


@pytest.mark.parametrize("hostile", ["../../victim", "ABSOLUTE", "revisions/../../../victim",
                                     "revisions/0002.yaml", "revisions/0001.yaml/", "."])
def test_prune_never_removes_a_file_history_names_outside_the_revision(
        ctx: tuple[Context, FakeEngine], tmp_path: Path, hostile: str) -> None:
    context = _three_revisions(ctx)
    victim = tmp_path / "victim"
    victim.write_text("the user's own file\n")
    hostile = str(victim) if hostile == "ABSOLUTE" else hostile
    edited = _edit(context.store, 1, file=hostile)
    before = _tree(tmp_path)

    with pytest.raises(UnsafeStoreEntry) as refused:
        commands.prune(context, keep=1)  # revision 1 is the one to go

    line = refused.value.one_line()
    assert "history.json" in line and "revision 1" in line and "git checkout" in line, line
    assert "\n" not in line
    assert victim.read_text() == "the user's own file\n"
    assert _tree(tmp_path) == before  # nothing changed: no file, not the history
    assert context.store.history_path.read_bytes() == edited
    assert context.store.overlay_text(context.store.get(2))  # the others stay usable
    commands.diff(context, a="2", b="3")


def test_revert_never_applies_a_file_history_names_outside_the_revision(
        ctx: tuple[Context, FakeEngine], tmp_path: Path) -> None:
    context = _three_revisions(ctx)
    _, engine = ctx
    outside = tmp_path / "outside.yaml"
    outside.write_bytes((context.store.root / "revisions/0001.yaml").read_bytes())
    _edit(context.store, 1, file=str(outside))  # same bytes, so the checksum would match
    applied = list(engine.applied)

    with pytest.raises(UnsafeStoreEntry, match=r"history\.json"):
        deploy.revert(context, to="1", message="", overrides=FAST)
    assert engine.applied == applied
    assert [r.number for r in context.store.revisions()] == [1, 2, 3]
    result = deploy.revert(context, to="2", message="", overrides=FAST)  # others still work
    assert result.outcome == "deployed" and engine.applied[-1] == "0004.yaml"


def test_a_revision_file_that_is_a_link_is_never_read_applied_or_pruned(
        ctx: tuple[Context, FakeEngine], tmp_path: Path) -> None:
    context = _three_revisions(ctx)
    _, engine = ctx
    own = context.store.root / "revisions/0001.yaml"
    outside = tmp_path / "outside.yaml"
    outside.write_bytes(own.read_bytes())  # the same bytes: the checksum alone cannot tell
    own.unlink()
    own.symlink_to(outside)
    applied = list(engine.applied)

    with pytest.raises(UnsafeStoreEntry, match=r"0001\.yaml: is a symbolic link"):
        deploy.revert(context, to="1", message="", overrides=FAST)
    assert engine.applied == applied
    with pytest.raises(UnsafeStoreEntry, match=r"0001\.yaml"):
        commands.prune(context, keep=1)
    assert own.is_symlink() and outside.exists()
    assert [r.number for r in context.store.revisions()] == [1, 2, 3]
    commands.diff(context, a="2", b="3")  # the others stay usable


def test_a_revisions_directory_that_is_a_link_is_never_written_or_pruned(
        ctx: tuple[Context, FakeEngine], tmp_path: Path) -> None:
    context = _three_revisions(ctx)
    directory = context.store.root / "revisions"
    elsewhere = tmp_path / "elsewhere"
    directory.rename(elsewhere)
    directory.symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())

    with pytest.raises(UnsafeStoreEntry, match="revisions: is a symbolic link"):
        commands.prune(context, keep=1)
    with pytest.raises(UnsafeStoreEntry, match="revisions"):
        _up(context)
    with pytest.raises(UnsafeStoreEntry, match="revisions"):
        context.store.overlay_text(context.store.get(3))
    assert sorted(p.name for p in elsewhere.iterdir()) == before


def test_a_history_that_is_a_link_is_not_read(ctx: tuple[Context, FakeEngine],
                                              tmp_path: Path) -> None:
    context = _three_revisions(ctx)
    outside = tmp_path / "history-elsewhere.json"
    context.store.history_path.rename(outside)
    context.store.history_path.symlink_to(outside)
    with pytest.raises(UnsafeStoreEntry, match=r"history\.json: is a symbolic link"):
        history(context)


# -- retention tags in history.json -----------------------------------------------------------


@pytest.mark.parametrize("foreign", ["alpine:latest", "reg/app:rollback-other-111111111111",
                                     "reg/app:rollback-shop-x-111111111111",
                                     "reg/app@sha256:" + "a" * 64, "sha256:" + "1" * 64,
                                     "--force", "reg/app:rollback-shop-11111111111z"])
def test_prune_removes_only_this_projects_retention_tags(
        ctx: tuple[Context, FakeEngine], foreign: str) -> None:
    context = _three_revisions(ctx)
    _, engine = ctx
    engine.tags[foreign] = GOOD.id
    data = json.loads(context.store.history_path.read_text())
    pins = data["revisions"][0]["pins"]
    edited = _edit(context.store, 1, pins={"web": {**pins["web"], "retention": foreign}})
    files = _tree(context.store.root)

    with pytest.raises(UnsafeStoreEntry) as refused:
        commands.prune(context, keep=1)
    assert "revision 1" in refused.value.one_line() and "rollback-shop-" in \
        refused.value.one_line()
    assert foreign in engine.tags and OURS in engine.tags
    assert context.store.history_path.read_bytes() == edited
    assert _tree(context.store.root) == files


def test_prune_still_removes_this_projects_own_stale_tags(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.images["reg/app:latest"] = NEXT
    _up(context)
    _up(context)
    assert commands.prune(context, keep=1) == [1]
    assert OURS not in engine.tags  # revision 1's image is kept by no revision now
    assert "reg/app:rollback-shop-222222222222" in engine.tags


@pytest.mark.parametrize("foreign", ["alpine:latest", "reg/app:rollback-other-222222222222",
                                     "reg/app@sha256:" + "a" * 64, "--force"])
def test_revert_never_points_a_foreign_tag_at_its_image(
        ctx: tuple[Context, FakeEngine], foreign: str) -> None:
    """A revert re-creates the retention tags of the revision it goes back to: only ones that
    name that very image, never a tag the history made up (it would move the user's)."""
    context = _three_revisions(ctx)
    _, engine = ctx
    data = json.loads(context.store.history_path.read_text())
    pins = data["revisions"][0]["pins"]
    _edit(context.store, 1, pins={"web": {**pins["web"], "retention": foreign}})
    result = deploy.revert(context, to="1", message="", overrides=FAST)
    assert result.outcome == "deployed", result
    assert foreign not in engine.tags, engine.tags


# -- lock and journal are never followed ------------------------------------------------------


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    """A file of the user's outside the store, which a planted link points to."""
    path = tmp_path / "precious"
    path.write_text('{"step": "begin", "operation": "up", "revision": 1}\n')
    before = path.read_bytes(), path.stat().st_mtime_ns
    yield path
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before, "the link was followed"


def test_a_lock_that_is_a_link_is_refused(tmp_path: Path, target: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / "lock").symlink_to(target)
    with pytest.raises(UnsafeStoreEntry, match="lock: is a symbolic link") as refused, \
            project_lock(root, command="up"):
        pass
    assert "rm " in refused.value.one_line()


@pytest.mark.parametrize("step", ["begin", "write", "end"])
def test_a_journal_that_is_a_link_is_never_written_through(
        tmp_path: Path, target: Path, step: str) -> None:
    journal = Journal(tmp_path)
    journal.path.symlink_to(target)
    with pytest.raises(UnsafeStoreEntry, match=r"journal\.jsonl: is a symbolic link"):
        if step == "begin":
            journal.begin("up", revision=1)
        elif step == "write":
            journal.write("apply", revision=1)
        else:
            journal.end()


@pytest.mark.parametrize("command", ["history", "status"])
def test_read_only_commands_refuse_a_journal_that_is_a_link(
        ctx: tuple[Context, FakeEngine], target: Path, command: str) -> None:
    """The target holds an unfinished journal: followed, recovery would append to it."""
    context = _three_revisions(ctx)
    (context.store.root / "journal.jsonl").unlink()
    (context.store.root / "journal.jsonl").symlink_to(target)
    with pytest.raises(UnsafeStoreEntry, match=r"journal\.jsonl: is a symbolic link"):
        history(context) if command == "history" else commands.status(context)


def test_read_only_commands_refuse_a_lock_that_is_a_link(
        ctx: tuple[Context, FakeEngine], target: Path) -> None:
    context = _three_revisions(ctx)
    (context.store.root / "lock").unlink(missing_ok=True)
    (context.store.root / "lock").symlink_to(target)
    with pytest.raises(UnsafeStoreEntry, match="lock: is a symbolic link"):
        history(context)


# -- modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_honour_the_umask(ctx: tuple[Context, FakeEngine], umask: int,
                                        mode: int) -> None:
    old = os.umask(umask)
    try:
        context = _three_revisions(ctx)
        commands.prune(context, keep=1)  # rewrites history.json once more
    finally:
        os.umask(old)
    root = context.store.root
    for name in ("revisions/0002.yaml", "revisions/0003.yaml", "current.yaml", "history.json",
                 ".gitignore"):
        assert (root / name).stat().st_mode & 0o777 == mode, name


# -- pin is journaled -------------------------------------------------------------------------


class Killed(BaseException):
    """The process dying at that very point: no handler of ours runs."""


@pytest.fixture
def running(ctx: tuple[Context, FakeEngine]) -> tuple[Context, FakeEngine]:
    context, engine = ctx
    engine.running = {"web": GOOD.id}
    return context, engine


def test_pin_failing_half_way_marks_its_revision_failed(
        running: tuple[Context, FakeEngine]) -> None:
    context, engine = running

    def tag_fails(source: str, target: str) -> None:
        raise DockerFailed(["docker", "image", "tag", source, target], "no space left")

    engine.tag = tag_fails  # type: ignore[method-assign]
    with pytest.raises(DockerFailed):
        commands.pin(context, message="")
    (revision,) = context.store.revisions()
    assert revision.status == "failed" and "no space left" in revision.reason, revision
    assert revision.finished
    assert Journal(context.store.root).unfinished() == []


def test_pin_killed_half_way_is_marked_interrupted_by_the_next_command(
        running: tuple[Context, FakeEngine]) -> None:
    context, engine = running

    def tag_dies(source: str, target: str) -> None:
        raise Killed

    engine.tag = tag_dies  # type: ignore[method-assign]
    with pytest.raises(Killed):
        commands.pin(context, message="")
    assert [r.status for r in context.store.revisions()] == ["pending"]

    (revision,) = history(context)  # the next command, a read-only one
    assert revision.status == "interrupted" and "recorded" in revision.reason, revision
    assert Journal(context.store.root).unfinished() == []


def test_pin_with_the_store_turning_read_only_after_recording(
        running: tuple[Context, FakeEngine], monkeypatch: pytest.MonkeyPatch) -> None:
    """The history cannot be written any more: neither promoted nor marked failed. The open
    journal is what lets the next command (the store writable again) mark it."""
    context, _ = running
    real_save = RevisionStore.save
    calls = []

    def save_then_read_only(self: RevisionStore, revisions: Any) -> None:
        calls.append(1)
        if len(calls) > 1:  # the first save records the revision
            raise OSError(errno.EROFS, "Read-only file system", str(self.history_path))
        real_save(self, revisions)

    monkeypatch.setattr(RevisionStore, "save", save_then_read_only)
    with pytest.raises(StoreNotWritable):
        commands.pin(context, message="")
    monkeypatch.setattr(RevisionStore, "save", real_save)
    assert [r.status for r in context.store.revisions()] == ["pending"]

    (revision,) = history(context)
    assert revision.status == "interrupted", revision


def test_pin_that_succeeds_closes_its_journal(running: tuple[Context, FakeEngine]) -> None:
    context, engine = running
    revision = commands.pin(context, message="adopt")
    assert revision.status == "deployed" and OURS in engine.tags
    steps = [json.loads(line)["step"]
             for line in (context.store.root / "journal.jsonl").read_text().splitlines()]
    assert steps == ["begin", "recorded", "promote", "end"]
