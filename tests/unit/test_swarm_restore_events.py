"""Swarm, offline: which container events decide a restore's gate on their own.

A restore goes back to a spec some tasks still carry; when the update it interrupts had begun
stopping one of them (stop-first, one task per node: seen on two nodes), that container's
``die`` carries the restored revision's label but is not a task of the restore.
"""

from __future__ import annotations

from typing import cast

from compose_rollback.dockerdata import Event
from compose_rollback.engine import Engine
from compose_rollback.rollout.swarm import SwarmTasks


def _event(action: str, task: str, *, cid: str) -> Event:
    return Event(action=action, container_id=cid, service="", time_nano=0, attributes={
        "com.docker.swarm.service.name": "shop_web", "com.docker.swarm.task.id": task,
        "org.compose-rollback.revision": "1"})


def test_an_older_task_of_the_restored_spec_that_stops_only_wakes_the_gate() -> None:
    tasks = SwarmTasks(cast(Engine, None), "shop", since=100.0, services=["web"], oneshot=[],
                       revisions={"web": "1"}, before={"t-old"})
    stopped = tasks._seen(_event("die", "t-old", cid="c-old"))
    assert (stopped.service, stopped.action) == ("", "swarm:die")
    tasks._seen(_event("health_status: unhealthy", "t-old", cid="c-old"))
    assert tasks.unhealthy == set()
    # A task the restore started still fails it at once.
    assert tasks._seen(_event("die", "t-new", cid="c-new")).service == "web"
    tasks._seen(_event("health_status: unhealthy", "t-new", cid="c-new"))
    assert tasks.unhealthy == {"c-new"}
