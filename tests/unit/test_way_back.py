"""The way back from a failed stop-first step, on the fake engine: the failed revision's
containers are found from the two revision files (no ``compose config`` call) and killed;
an unchanged service's containers are left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compose_rollback import deploy
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
BAD = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
DB = ImageInfo("sha256:" + "3" * 64, ("reg/db:latest",), ("reg/db@sha256:" + "c" * 64,))
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)


class CountingEngine(FakeEngine):
    """Counts the core's ``config --hash`` calls (not the fake's own, inside ``up``) and
    notes the containers of the first ``up`` that ran the BAD image."""

    hash_calls = 0
    failed: frozenset[str] = frozenset()

    def config_hashes(self, project: Project, *, overlay: Path) -> dict[str, str]:
        self.hash_calls += 1
        return super().config_hashes(project, overlay=overlay)

    def up(self, project: Project, **kwargs: Any) -> None:
        calls = self.hash_calls
        super().up(project, **kwargs)
        self.hash_calls = calls
        if not self.failed:
            self.failed = frozenset(b.id for b in self.boxes.values() if b.image_id == BAD.id)


def test_only_the_changed_services_containers_are_killed(tmp_path: Path) -> None:
    model: dict[str, Any] = {"name": "shop", "services": {
        "web": {"image": "reg/app:latest"}, "db": {"image": "reg/db:latest"}}}
    engine = CountingEngine(model=model, images={"reg/app:latest": GOOD, "reg/db:latest": DB})
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]

    def up() -> deploy.DeployResult:
        return deploy.up(context, services=[], build=False, pull=None, message="m",
                         overrides=FAST, rollback=True, dry_run=False)

    assert up().outcome == "deployed"
    db = {b.id for b in engine.boxes.values() if b.service == "db"}
    engine.images["reg/app:latest"] = BAD
    engine.image_behaviour[BAD.id] = "unhealthy"
    engine.calls.clear()
    assert up().outcome == "rolled_back"
    kills = [c for c in engine.calls if c[0] == "kill"]
    assert len(kills) == 1 and set(kills[0][1]) == engine.failed and len(engine.failed) == 1
    assert db <= set(engine.boxes)  # the unchanged service's container: never touched
    assert engine.hash_calls == 0


def test_a_failed_rolling_revisions_proven_batches_are_killed_on_the_way_back(
        tmp_path: Path) -> None:
    """Batch 1 passed its gate, batch 2 failed: the revision failed, so on the way back its
    batch-1 container is killed too (never drained and stopped); the good release's old
    containers were stopped gracefully only on the way forward."""
    update = {"order": "start-first", "parallelism": 1}
    model: dict[str, Any] = {"name": "shop", "services": {"web": {
        "image": "reg/app:latest", "deploy": {"replicas": 4, "update_config": update},
        "x-rollback": {"drain": 0}}}}
    engine = CountingEngine(model=model, images={"reg/app:latest": GOOD})
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]

    def up() -> deploy.DeployResult:
        return deploy.up(context, services=[], build=False, pull=None, message="m",
                         overrides=FAST, rollback=True, dry_run=False)

    assert up().outcome == "deployed"
    engine.images["reg/app:latest"] = BAD
    engine.next_behaviour[BAD.id] = ["healthy", "unhealthy"]
    engine.calls.clear()
    result = up()
    assert result.outcome == "rolled_back"
    assert sorted(b.image_id for b in engine.boxes.values()) == [GOOD.id] * 4
    killed = {i for c in engine.calls if c[0] == "kill" for i in c[1]}
    stopped = {i for c in engine.calls if c[0] == "stop" for i in c[1]}
    proven = set(engine.failed)  # the first container of the new revision: batch 1's
    assert len(proven) == 1 and proven <= killed and not proven & stopped, engine.calls
