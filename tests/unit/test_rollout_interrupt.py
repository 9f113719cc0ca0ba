"""An interrupt (Ctrl-C, SIGTERM) during a gate, on the fake engine: in every order the
containers that had not passed their gates are killed on the way back, never stopped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from compose_rollback import deploy
from compose_rollback.context import Context
from compose_rollback.dockerdata import Event, ImageInfo
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore

from .fake_engine import FakeEngine, FakeStream

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
NEW = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)

ORDERS: dict[str, dict[str, Any]] = {
    "stop-first": {"replicas": 2},
    "start-first": {"replicas": 2, "update_config": {"order": "start-first"}},
    "rolling": {"replicas": 2, "update_config": {"order": "start-first", "parallelism": 1}},
    "canary": {"replicas": 2, "update_config": {"order": "start-first"}},
}


class InterruptedGate(FakeEngine):
    """The n-th gate once armed (``interrupt_at``) is cut short as a Ctrl-C would."""

    interrupt_at: int | None = None
    at_interrupt: frozenset[str] = frozenset()  # the containers there when it came

    def events(self, project_name: str, *, on_event: Callable[[Event], None]) -> FakeStream:
        if self.interrupt_at is not None:
            self.interrupt_at -= 1
            if self.interrupt_at == 0:
                self.interrupt_at = None
                self.at_interrupt = frozenset(self.boxes)
                raise KeyboardInterrupt
        return super().events(project_name, on_event=on_event)


def _shop(tmp_path: Path, order: str) -> tuple[Context, InterruptedGate]:
    own: dict[str, Any] = {"drain": 0}
    if order == "canary":
        own["canary"] = {"replicas": 1, "duration": "0s"}
    model = {"name": "shop", "services": {"web": {
        "image": "reg/app:latest", "deploy": ORDERS[order], "x-rollback": own}}}
    engine = InterruptedGate(model=model, images={"reg/app:latest": GOOD})
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    return context, engine


def _up(context: Context) -> deploy.DeployResult:
    return deploy.up(context, services=[], build=False, pull=None, message="m",
                     overrides=FAST, rollback=True, dry_run=False)


@pytest.mark.parametrize(("order", "gate"), [
    ("stop-first", 1), ("start-first", 1), ("rolling", 1), ("rolling", 2), ("canary", 1),
    ("canary", 2)])
def test_an_interrupted_gate_kills_the_unproven_containers(
        tmp_path: Path, order: str, gate: int) -> None:
    """``gate`` 2: the rolling update's second batch, the promoted canary's rest."""
    context, engine = _shop(tmp_path, order)
    assert _up(context).outcome == "deployed"
    good = {b.id for b in engine.boxes.values()}
    engine.images["reg/app:latest"] = NEW
    engine.calls.clear()
    engine.interrupt_at = gate
    result = _up(context)
    assert result.outcome == "rolled_back" and result.restored == 1
    assert [r.status for r in context.store.revisions()][-1] == "interrupted"
    assert "interrupted by the user" in result.message
    killed = {i for c in engine.calls if c[0] == "kill" for i in c[1]}
    stopped = {i for c in engine.calls if c[0] == "stop" for i in c[1]}
    # the newest container is the one whose gate was cut short; a rolling update's earlier
    # batch and a promoted canary passed theirs
    unproven = max(engine.at_interrupt - good, key=lambda i: int(i.rsplit("-", 1)[1]))
    assert unproven in killed and unproven not in stopped, engine.calls
    assert {b.image_id for b in engine.boxes.values()} == {GOOD.id}
    assert len(engine.boxes) == 2
