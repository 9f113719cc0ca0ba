"""Swarm, offline: our soak runs beside Swarm's own ``monitor``, not after it.

Swarm's update stays ``updating`` for one ``monitor`` after its last task started. Waiting for
that before starting the soak made every rollout (the restore of a broken release included)
last ``monitor`` + ``min_healthy``; the rollout now ends when both have (``SwarmOrchestrator.
_until_swarm_done`` waits for Swarm's end after the soak, failing on what the gate fails on).
"""

from __future__ import annotations

from typing import Any

from compose_rollback.gates.container import judge
from compose_rollback.swarm.tasks import gate_view, parse_services, parse_tasks

IMAGE = "127.0.0.1:5000/app:live@sha256:" + "a" * 64
LABELS = {"com.docker.stack.namespace": "shop", "org.compose-rollback.revision": "4"}
SINCE = 1796115605.0  # 2026-12-01T09:00:05Z


def _service(update: str) -> dict[str, Any]:
    return {"ID": "s1", "UpdateStatus": {"State": update, "Message": f"update {update}"},
            "Spec": {"Name": "shop_web", "Mode": {"Replicated": {"Replicas": 2}},
                     "TaskTemplate": {"ContainerSpec": {"Image": IMAGE, "Labels": LABELS}}}}


def _task(slot: int, state: str) -> dict[str, Any]:
    return {"ID": f"t{slot}", "ServiceID": "s1", "Slot": slot, "DesiredState": "running",
            "CreatedAt": "2026-12-01T09:00:10Z",
            "Status": {"State": state, "ContainerStatus": {"ContainerID": f"c{slot}"}},
            "Spec": {"ContainerSpec": {"Image": IMAGE, "Labels": LABELS}}}


def _verdicts(update: str, *states: str) -> list[tuple[str, str]]:
    services = parse_services("shop", [_service(update)])
    tasks = parse_tasks({"s1": "web"}, [_task(i + 1, s) for i, s in enumerate(states)])
    return [judge(v, restarts_before=0) for v in gate_view(services, tasks, wanted=["web"],
                                                           since=SINCE)]


def test_every_task_running_is_good_while_swarm_still_monitors() -> None:
    assert _verdicts("updating", "running", "running") == [("good", ""), ("good", "")]


def test_a_task_still_starting_or_a_paused_update_still_decide() -> None:
    assert any(v == "wait" for v, _ in _verdicts("updating", "running", "starting"))
    assert any(v == "fail" and "paused" in why for v, why in _verdicts("paused", "running",
                                                                       "running"))
