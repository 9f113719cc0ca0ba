"""The deploy transaction with the engine seam replaced: fast checks of the decision logic."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from compose_rollback import commands, deploy
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.errors import BadInput, CorruptRevision, DockerFailed, UnpinnableImages
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
BAD = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
LOCAL = ImageInfo("sha256:" + "3" * 64, ("worker:dev",), ())
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)


def _model(**env: str) -> dict[str, Any]:
    return {"name": "shop", "services": {
        "web": {"image": "reg/app:latest", "environment": {"SECRET": "${SECRET}", **env}},
        "worker": {"image": "worker:dev", "build": {"context": "."}},
    }}


@pytest.fixture
def ctx(tmp_path: Path) -> tuple[Context, FakeEngine]:
    engine = FakeEngine(model=_model(), images={"reg/app:latest": GOOD, "worker:dev": LOCAL})
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("services: {}\n")  # the fake engine supplies the model itself
    project = Project(name="shop", directory=tmp_path, files=(compose_file,))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    return context, engine


def _up(context: Context, **kw: Any) -> deploy.DeployResult:
    args: dict[str, Any] = {"services": [], "build": False, "pull": None, "message": "m",
                            "overrides": FAST, "rollback": True, "dry_run": False, **kw}
    return deploy.up(context, **args)


def test_first_deploy_pins_registry_digest_and_local_id(ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    result = _up(context)
    assert result.outcome == "deployed"
    revision = context.store.get(1)
    assert revision.pins["web"].image == "reg/app:latest@sha256:" + "a" * 64
    assert revision.pins["worker"].image == LOCAL.id and revision.pins["worker"].local
    text = context.store.current_path.read_text()
    assert "build" not in text and "pull_policy: never" in text and "${SECRET}" in text
    assert set(engine.tags) == {"reg/app:rollback-shop-111111111111",
                                "worker:rollback-shop-333333333333"}


def test_failed_gate_restores_last_good(ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.images["reg/app:latest"] = BAD
    engine.behaviour["web"] = "crash"
    original_containers = engine.containers

    def crash_only_bad(project_name: str, *, known: Sequence[str] = (),
                       limit: float = 30.0) -> list[Any]:
        engine.behaviour["web"] = "crash" if engine.running.get("web") == BAD.id else "healthy"
        return original_containers(project_name, known=known, limit=limit)

    engine.containers = crash_only_bad  # type: ignore[method-assign]
    result = _up(context)
    assert result.outcome == "rolled_back"
    assert result.restored == 1
    assert engine.applied == ["0001.yaml", "0002.yaml", "0001.yaml"]
    statuses = [(r.number, r.status) for r in context.store.revisions()]
    assert statuses == [(1, "deployed"), (2, "failed")]
    assert "exited with code 3" in context.store.get(2).reason


def test_first_deploy_failing_needs_a_person(ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    engine.behaviour["web"] = "unhealthy"
    result = _up(context)
    assert result.outcome == "unrestored"
    assert context.store.get(1).status == "failed"


def test_no_rollback_leaves_the_failed_revision(ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.behaviour["web"] = "crash"
    result = _up(context, rollback=False)
    assert result.outcome == "failed" and result.restored is None
    assert engine.applied[-1] == "0002.yaml"


def test_named_service_keeps_the_others_from_current(ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.images["worker:dev"] = ImageInfo("sha256:" + "4" * 64, ("worker:dev",), ())
    engine.images["reg/app:latest"] = BAD
    _up(context, services=["worker"])
    pins = context.store.get(2).pins
    assert pins["worker"].image_id == "sha256:" + "4" * 64
    assert pins["web"].image_id == GOOD.id  # not re-pinned: still revision 1's


def test_unknown_service_and_unpinnable_images_change_nothing(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    with pytest.raises(BadInput, match="nosuch"):
        _up(context, services=["nosuch"])
    engine.images.clear()
    with pytest.raises(UnpinnableImages) as caught:
        _up(context)
    assert set(caught.value.problems) == {"web", "worker"}
    assert not context.store.root.exists() or not context.store.revisions()
    assert engine.applied == []


def test_dry_run_writes_nothing(ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    result = _up(context, dry_run=True)
    assert result.outcome == "dry_run" and "web: !override" in result.overlay
    assert not context.store.history_path.exists() and engine.applied == []


def test_revert_records_a_new_revision_and_diff_shows_config(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.model = _model(MODE="fast")
    engine.images["reg/app:latest"] = BAD
    _up(context)
    result = deploy.revert(context, to=None, message="", overrides=FAST)
    assert result.outcome == "deployed"
    third = context.store.get(3)
    assert third.kind == "revert" and third.restores == 1 and third.status == "deployed"
    assert context.store.get(2).status == "superseded"
    report = commands.diff(context, a="2", b="3")
    (web,) = [s for s in report.services if s.service == "web"]
    assert web.image_before != web.image_after
    assert ("environment.MODE", "fast", None) in web.changes


def test_prune_keeps_current_and_last_good(ctx: tuple[Context, FakeEngine]) -> None:
    context, _engine = ctx
    for _ in range(4):
        _up(context)
    dropped = commands.prune(context, keep=1)
    assert dropped == [1, 2]
    assert [r.number for r in context.store.revisions()] == [3, 4]
    assert not (context.store.root / "revisions/0001.yaml").exists()


def test_status_reports_what_runs_against_the_current_revision(
    ctx: tuple[Context, FakeEngine]
) -> None:
    context, _ = ctx
    _up(context)
    report = commands.status(context)
    assert report.current is not None and report.current.number == 1
    assert {s.service: s.drift for s in report.services} == {"web": [], "worker": []}


def test_status_inspects_only_the_containers_a_listing_cannot_answer_for(
    ctx: tuple[Context, FakeEngine]
) -> None:
    """A running container of its pinned image is taken from ``docker ps``; a stopped one,
    one of another image, one of no pinned service is inspected (one call for them all)."""
    context, engine = ctx
    _up(context)
    report = commands.status(context)
    assert engine.inspected == [] and not report.drifted
    worker = max(engine.boxes.values(), key=lambda b: b.service)
    engine.behaviour["worker"] = "crash"
    report = commands.status(context)
    assert engine.inspected == [(worker.id,)]
    assert {s.service: s.drift for s in report.services} == {
        "web": [], "worker": ["shop-worker-1 is exited"]}
    assert report.services[1].running[0]["state"] == "exited"
    engine.inspected.clear()
    engine.behaviour.clear()
    engine.running = {"web": BAD.id, "cron": LOCAL.id}  # by hand: another image, a stranger
    report = commands.status(context)
    assert [sorted(ids) for ids in engine.inspected] == [
        sorted(b.id for b in engine.boxes.values())]
    assert {s.service: s.drift for s in report.services} == {
        "cron": ["runs but is not in the current revision"],
        "web": [f"shop-web-1 runs image {BAD.id[:19]}, not the pinned one"],
        "worker": ["pinned but has no container"]}


def test_status_asks_docker_beside_the_store_and_reports_the_store_first(
    ctx: tuple[Context, FakeEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    context, engine = ctx
    _up(context)

    def down(project_name: str, **kw: Any) -> list[Any]:
        raise DockerFailed(["docker", "ps"], "Cannot connect to the Docker daemon")

    monkeypatch.setattr(engine, "listing", down)
    with pytest.raises(DockerFailed, match="Cannot connect"):
        commands.status(context)
    context.store.history_path.write_text("{not json")
    with pytest.raises(CorruptRevision, match=r"history\.json"):  # as before: the store first
        commands.status(context)
