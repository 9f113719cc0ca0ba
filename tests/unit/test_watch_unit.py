"""The watch loop's decisions with the engine seam replaced (watch.py, lock.end_watches)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from compose_rollback import deploy, lock, watch
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.errors import NothingToWatch, SettingsError
from compose_rollback.gates.container import GateFailure
from compose_rollback.lock import end_watches, superseded_by, watch_marker
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore
from compose_rollback.settings import load_settings

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
BAD = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)


def _model(**top: Any) -> dict[str, Any]:
    return {"name": "shop", "services": {"web": {"image": "reg/app:latest"}}, **top}


@pytest.fixture
def ctx(tmp_path: Path) -> tuple[Context, FakeEngine]:
    engine = FakeEngine(model=_model(), images={"reg/app:latest": GOOD})
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("services: {}\n")  # the fake engine supplies the model itself
    project = Project(name="shop", directory=tmp_path, files=(compose_file,))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    return context, engine


def _up(context: Context) -> deploy.DeployResult:
    return deploy.up(context, services=[], build=False, pull=None, message="m",
                     overrides=FAST, rollback=True, dry_run=False)


def _two_revisions(context: Context, engine: FakeEngine) -> None:
    """Revision 1 (GOOD) superseded by revision 2 (BAD, healthy for now)."""
    assert _up(context).outcome == "deployed"
    engine.images["reg/app:latest"] = BAD
    assert _up(context).outcome == "deployed"


def _statuses(context: Context) -> list[tuple[int, str]]:
    return [(r.number, r.status) for r in context.store.revisions()]


def test_a_watch_that_sees_no_failure_ends_at_its_deadline(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _two_revisions(context, engine)
    applied = list(engine.applied)
    result = watch.watch(context, duration=0.2, overrides=FAST)
    assert (result.outcome, result.revision, result.watch) == ("deployed", 2, "passed")
    assert engine.applied == applied
    assert _statuses(context) == [(1, "superseded"), (2, "deployed")]
    assert not list(context.store.root.glob("watch-*.tmp"))


def test_a_crash_during_the_watch_restores_the_previous_good_revision(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _two_revisions(context, engine)
    engine.image_behaviour[BAD.id] = "crash"
    result = watch.watch(context, duration=30.0, overrides=FAST)
    assert (result.outcome, result.revision, result.restored) == ("rolled_back", 2, 1)
    assert result.watch == "failed"
    assert engine.applied[-1] == "0001.yaml"
    assert any(call[0] == "kill" for call in engine.calls)  # the failed release, killed
    assert _statuses(context) == [(1, "deployed"), (2, "failed")]
    failed = context.store.get(2)
    assert "exited with code 3" in failed.reason and "during the watch" in failed.reason
    assert failed.restored_to == 1
    assert context.store.current_path.read_text() == context.store.overlay_text(
        context.store.get(1))


def test_the_first_revision_failing_its_watch_needs_a_person(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.behaviour["web"] = "crash"
    result = watch.watch(context, duration=30.0, overrides=FAST)
    assert result.outcome == "unrestored"
    assert _statuses(context) == [(1, "failed")]


def test_a_revision_recorded_while_the_watcher_waited_supersedes_its_failure(
        ctx: tuple[Context, FakeEngine], monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the signal cannot close: an `up` the watcher saw replacing containers
    (and took for a failure) is found under the lock, and nothing is reverted."""
    context, engine = ctx
    _two_revisions(context, engine)

    def an_up_came(*_: object, **__: object) -> GateFailure:
        assert _up(context).outcome == "deployed"  # revision 3, while the watch runs
        return GateFailure("web", "shop-web-1", "exited with code 143")

    monkeypatch.setattr(watch, "_watch_gates", an_up_came)
    result = watch.watch(context, duration=30.0, overrides=FAST)
    assert (result.outcome, result.watch) == ("deployed", "superseded by up")
    assert _statuses(context) == [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    assert engine.applied[-1] == "0003.yaml"


def test_a_note_in_the_marker_supersedes_a_failure_seen_before_the_signal(
        ctx: tuple[Context, FakeEngine], monkeypatch: pytest.MonkeyPatch) -> None:
    context, engine = ctx
    _two_revisions(context, engine)

    def noted(*_: object, **__: object) -> GateFailure:
        marker = next(context.store.root.glob("watch-*.tmp"))
        marker.write_text(json.dumps({"pid": 1, "superseded_by": "revert"}))
        return GateFailure("web", "shop-web-1", "exited with code 143")

    monkeypatch.setattr(watch, "_watch_gates", noted)
    result = watch.watch(context, duration=30.0, overrides=FAST)
    assert result.watch == "superseded by revert" and result.outcome == "deployed"
    assert _statuses(context) == [(1, "superseded"), (2, "deployed")]


@pytest.mark.parametrize(("duration", "outcome"), [(30.0, "watch_interrupted"),
                                                    (None, "deployed")])
def test_an_interrupt_ends_the_watch_and_reverts_nothing(
        ctx: tuple[Context, FakeEngine], monkeypatch: pytest.MonkeyPatch,
        duration: float | None, outcome: str) -> None:
    context, engine = ctx
    _two_revisions(context, engine)

    def interrupted(*_: object, **__: object) -> GateFailure:
        raise KeyboardInterrupt

    monkeypatch.setattr(watch, "_watch_gates", interrupted)
    result = watch.watch(context, duration=duration, overrides=FAST)
    assert (result.outcome, result.watch) == (outcome, "interrupted")
    assert result.message == "watch ended by interrupt; revision 2 stays deployed"
    assert _statuses(context) == [(1, "superseded"), (2, "deployed")]


def test_an_interrupt_as_the_marker_appears_ends_the_watch_and_leaves_no_marker(
        ctx: tuple[Context, FakeEngine], monkeypatch: pytest.MonkeyPatch) -> None:
    """The marker is visible from its rename on, while its write still syncs the directory:
    a SIGINT sent the moment it appears (as a user or a test waiting for it would) ended the
    whole ``up`` with exit 130 and no result, and left the marker behind. The interrupt comes
    at that exact point here: right after the real write, before it returns."""
    context, engine = ctx
    _two_revisions(context, engine)
    real_write = lock.atomic_write
    seen: list[bool] = []

    def write_then_interrupt(path: Path, text: str) -> None:
        real_write(path, text)
        seen.append(path.exists())
        raise KeyboardInterrupt

    monkeypatch.setattr(lock, "atomic_write", write_then_interrupt)
    try:
        result = watch.watch(context, duration=30.0, overrides=FAST)
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped the watch: `up --watch` would exit 130, no result")
    assert seen == [True]
    assert (result.outcome, result.watch) == ("watch_interrupted", "interrupted")
    assert result.message == "watch ended by interrupt; revision 2 stays deployed"
    assert _statuses(context) == [(1, "superseded"), (2, "deployed")]
    assert not list(context.store.root.glob("watch-*.tmp"))


def test_watch_without_a_current_revision_is_bad_input(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, _ = ctx
    with pytest.raises(NothingToWatch, match="no deployed revision to watch"):
        watch.watch(context, duration=1.0, overrides=FAST)


def test_up_watches_for_the_setting_unless_told(ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    engine.model = _model(**{"x-rollback": {"watch": "200ms"}})
    result = _up(context)
    assert watch.after_up(context, result, duration=None, overrides=FAST).watch == "passed"
    assert watch.after_up(context, result, duration=0.0, overrides=FAST).watch == ""
    failed = deploy.DeployResult("rolled_back", "x", revision=1)
    assert watch.after_up(context, failed, duration=5.0, overrides=FAST) is failed


def test_the_watch_setting_is_a_duration() -> None:
    assert load_settings({"x-rollback": {"watch": "5m"}}).watch == 300.0
    assert load_settings({}).watch == 0.0
    with pytest.raises(SettingsError, match=r"x-rollback\.watch"):
        load_settings({"x-rollback": {"watch": "soon"}})


def test_end_watches_notes_and_signals_live_watchers_only(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                                "compose_rollback"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        for pid in (sleeper.pid, gone.pid):
            (tmp_path / f"watch-{pid}.tmp").write_text(json.dumps({"pid": pid, "revision": 2}))
        with watch_marker(tmp_path, revision=2) as mine:
            assert end_watches(tmp_path, by="revert") == [sleeper.pid]
            assert superseded_by(mine) is None  # this process is never told
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
        assert superseded_by(tmp_path / f"watch-{sleeper.pid}.tmp") == "revert"
        assert not (tmp_path / f"watch-{gone.pid}.tmp").exists()  # a dead watcher's marker
        assert not (tmp_path / f"watch-{os.getpid()}.tmp").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
