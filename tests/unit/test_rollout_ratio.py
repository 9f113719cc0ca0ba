"""``max_failure_ratio`` of a rolling update, counted on the fake engine.

Each new container that fails its gate counts; within ``max_failure_ratio * replicas`` it is
killed and its slot started again with the new revision; over it, ``failure_action``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compose_rollback import deploy
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore
from compose_rollback.rollout.report import StepReport
from compose_rollback.rollout.rolling import Budget

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
BAD = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)


def _shop(tmp_path: Path, *, ratio: float, action: str = "rollback",
          order: str = "start-first") -> tuple[Context, FakeEngine]:
    update: dict[str, Any] = {"order": order, "parallelism": 1, "failure_action": action,
                              "max_failure_ratio": ratio}
    model = {"name": "shop", "services": {"web": {
        "image": "reg/app:latest", "deploy": {"replicas": 4, "update_config": update},
        "x-rollback": {"drain": 0}}}}
    engine = FakeEngine(model=model, images={"reg/app:latest": GOOD})
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    return context, engine


def _up(context: Context) -> deploy.DeployResult:
    return deploy.up(context, services=[], build=False, pull=None, message="m",
                     overrides=FAST, rollback=True, dry_run=False)


def _release(engine: FakeEngine, failures: list[str]) -> None:
    """Move the tag to a new image whose next containers behave as ``failures`` say."""
    engine.images["reg/app:latest"] = BAD
    engine.next_behaviour[BAD.id] = list(failures)
    engine.calls.clear()


def _forward(result: deploy.DeployResult) -> StepReport:
    return next(s for s in result.steps if s.revision == result.revision and not s.back)


@pytest.mark.parametrize(("ratio", "replicas", "allowed"), [
    (0.0, 4, 0), (0.25, 4, 1), (0.2, 4, 0), (0.5, 3, 1), (0.3, 10, 3), (1.0, 4, 4)])
def test_the_budget_is_the_floor_of_ratio_times_replicas(
        ratio: float, replicas: int, allowed: int) -> None:
    budget = Budget.of(ratio, replicas)
    assert budget.allowed == allowed
    assert all(budget.take(1) for _ in range(allowed)) and not budget.take(1)


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
@pytest.mark.parametrize("failure", ["crash", "unhealthy"])
def test_a_failure_within_the_budget_is_replaced_by_the_new_revision(
        tmp_path: Path, order: str, failure: str) -> None:
    context, engine = _shop(tmp_path, ratio=0.25, order=order)
    assert _up(context).outcome == "deployed"
    _release(engine, [failure])
    result = _up(context)
    assert result.outcome == "deployed", result.message
    assert sorted(b.image_id for b in engine.boxes.values()) == [BAD.id] * 4
    assert all(b.mode is None for b in engine.boxes.values())  # the failed one is gone
    kills = [c for c in engine.calls if c[0] == "kill"]
    assert len(kills) == 1 and len(kills[0][1]) == 1  # killed, never stopped gracefully
    stopped = {i for c in engine.calls if c[0] == "stop" for i in c[1]}
    assert not stopped & set(kills[0][1])
    step = _forward(result)
    assert step.outcome == "passed" and step.tolerated == (1, 1, 4)
    assert step.to_json()["tolerated"] == {"replaced": 1, "budget": 1, "replicas": 4}
    assert step.describe() == ("web: rolling (batches of 1): passed; "
                               "web: 1 failed replica replaced (budget 1 of 4)")


def test_failures_over_the_budget_trigger_the_failure_action(tmp_path: Path) -> None:
    context, engine = _shop(tmp_path, ratio=0.25)
    _up(context)
    _release(engine, ["crash", "crash"])  # the slot fails again: 2 failures > 1 allowed
    result = _up(context)
    assert result.outcome == "rolled_back" and result.restored == 1
    assert sorted(b.image_id for b in engine.boxes.values()) == [GOOD.id] * 4
    forward = _forward(result)
    assert forward.outcome == "failed" and forward.tolerated == (1, 1, 4)
    assert forward.failed_batch == 1
    assert len([c for c in engine.calls if c[0] == "kill"]) == 2


def test_failures_spread_over_batches_count_together(tmp_path: Path) -> None:
    context, engine = _shop(tmp_path, ratio=0.25, action="pause")
    _up(context)
    # batch 1: one failure (tolerated), its retry passes; batch 2: one more, over the budget
    _release(engine, ["crash", "healthy", "unhealthy"])
    result = _up(context)
    assert result.outcome == "failed" and "paused (failure_action: pause)" in result.message
    assert _forward(result).failed_batch == 2 and _forward(result).tolerated == (1, 1, 4)
    assert sorted(b.image_id for b in engine.boxes.values()) == [GOOD.id] * 3 + [BAD.id]


def test_ratio_zero_is_the_first_failure(tmp_path: Path) -> None:
    context, engine = _shop(tmp_path, ratio=0.0)
    _up(context)
    _release(engine, ["crash"])
    result = _up(context)
    assert result.outcome == "rolled_back"
    assert _forward(result).tolerated == (0, 0, 4) and _forward(result).failed_batch == 1
    assert "replaced" not in _forward(result).describe()
    ups = [c for c in engine.calls if c[0] == "up"]
    assert ups[0] == ("up", "0002.yaml", ("web",), {"web": 5}, False) and \
        all(c[1] != "0002.yaml" for c in ups[1:])  # never retried
