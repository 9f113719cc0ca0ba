"""How a rollout's steps are reported (``up --json`` ``steps``, the text result's lines)."""

from __future__ import annotations

from compose_rollback.deploy import DeployResult
from compose_rollback.render import deploy, deploy_json
from compose_rollback.rollout.config import UpdateConfig
from compose_rollback.rollout.plan import Step
from compose_rollback.rollout.report import StepNotes, step_report


def _canary_step(parallelism: int = 0) -> Step:
    return Step("canary", ("web",), ("web",), old=("a", "b"), replicas=2,
                update=UpdateConfig(order="start-first", parallelism=parallelism))


def test_an_aborted_canary_says_so() -> None:
    report = step_report(_canary_step(), revision=2, back=False, outcome="failed",
                         notes=StepNotes(canary=1), reason="web: query = 1, not below 0.5")
    assert report.to_json() == {
        "revision": 2, "direction": "forward", "strategy": "canary", "services": ["web"],
        "new": 2, "beside": 2, "outcome": "failed", "reason": "web: query = 1, not below 0.5",
        "canary": {"replicas": 1, "outcome": "aborted"}, "batches": None,
        "tolerated": None}
    assert report.describe() == "web: canary (1 canary, aborted): failed"


def test_a_promoted_canary_rolled_in_batches() -> None:
    report = step_report(_canary_step(parallelism=1), revision=3, back=False,
                         outcome="passed", notes=StepNotes(canary=1, promoted=True, batches=1))
    found = report.to_json()
    assert found["canary"] == {"replicas": 1, "outcome": "promoted"}
    assert found["batches"] == {"size": 1, "begun": 1, "failed": None}


def test_a_failed_rolling_batch_is_named() -> None:
    step = Step("rolling", ("web",), ("web",), old=("a", "b", "c", "d"), replicas=4,
                update=UpdateConfig(order="start-first", parallelism=1))
    report = step_report(step, revision=5, back=False, outcome="failed",
                         notes=StepNotes(batches=2, failed_batch=2))
    assert report.to_json()["batches"] == {"size": 1, "begun": 2, "failed": 2}
    assert report.describe() == "web: rolling (batches of 1, batch 2 failed): failed"


def test_a_step_never_run_has_no_canary_outcome() -> None:
    report = step_report(_canary_step(), revision=2, back=False, outcome="not_run")
    assert report.to_json()["canary"] is None and report.outcome == "not_run"


def test_steps_in_the_json_and_the_text_result() -> None:
    steps = (step_report(_canary_step(), revision=2, back=False, outcome="failed",
                         notes=StepNotes(canary=1)),
             step_report(Step("stop-first", ("web",), ("web",)), revision=1, back=True,
                         outcome="passed"))
    result = DeployResult("rolled_back", "revision 2 failed", revision=2, restored=1,
                          steps=steps)
    found = deploy_json(result, exit_code=1)["steps"]
    assert [(s["strategy"], s["direction"], s["outcome"]) for s in found] == [
        ("canary", "forward", "failed"), ("stop-first", "back", "passed")]
    assert deploy(result).splitlines()[1:] == [
        "  step: web: canary (1 canary, aborted): failed",
        "  step: web: stop-first: passed (way back)"]


def test_a_plain_stop_first_up_prints_no_steps() -> None:
    steps = (step_report(Step("stop-first", ("web",), ("web",)), revision=1, back=False,
                         outcome="passed"),)
    result = DeployResult("deployed", "revision 1 deployed and healthy", revision=1,
                          steps=steps)
    assert deploy(result) == "revision 1 deployed and healthy"
    assert deploy_json(result, exit_code=0)["steps"][0]["new"] == 0
