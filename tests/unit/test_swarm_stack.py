"""Swarm, offline: the stack file made of a revision's model, and the tasks as the gate sees
them (recorded shapes of ``docker service inspect`` / ``docker inspect <task>``)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from compose_rollback.dockerdata import Event
from compose_rollback.engine import Engine
from compose_rollback.errors import StackRejected
from compose_rollback.gates.container import judge
from compose_rollback.rollout.swarm import SwarmTasks, push_command
from compose_rollback.swarm.stackfile import stack_file
from compose_rollback.swarm.tasks import gate_view, parse_services, parse_tasks

IMAGE = "127.0.0.1:5000/app:live@sha256:" + "a" * 64
OLD = "127.0.0.1:5000/app:live@sha256:" + "b" * 64
LABELS = {"com.docker.stack.namespace": "shop", "org.compose-rollback.revision": "4"}


def _model(**web: Any) -> dict[str, Any]:
    return {"name": "shop", "x-rollback": {"orchestrator": "swarm"},
            "networks": {"default": {"name": "shop_default", "ipam": {}}},
            "services": {"web": {"image": IMAGE, "pull_policy": "missing", "command": None,
                                 "deploy": {"update_config": {"failure_action": "rollback"}},
                                 **web}}}


def test_stack_file_drops_what_the_stack_loader_rejects_and_switches_swarms_rollback_off(
        ) -> None:
    model = _model(ports=[{"mode": "ingress", "target": 8080, "published": "8080",
                           "protocol": "tcp"}],
                   depends_on={"db": {"condition": "service_started", "required": True}},
                   volumes=[{"type": "bind", "source": "/srv", "target": "/data",
                             "bind": {"create_host_path": True}}], scale=3)
    stack = json.loads(stack_file(model))
    web = stack["services"]["web"]
    assert "name" not in stack and "x-rollback" not in stack
    assert "pull_policy" not in web and "command" not in web and "scale" not in web
    assert web["ports"] == [{"mode": "ingress", "target": 8080, "published": 8080,
                             "protocol": "tcp"}]
    assert web["depends_on"] == ["db"]
    assert web["volumes"] == [{"type": "bind", "source": "/srv", "target": "/data"}]
    assert web["deploy"]["replicas"] == 3
    assert web["deploy"]["update_config"] == {"failure_action": "pause"}
    assert web["deploy"]["rollback_config"] == {"failure_action": "pause"}
    assert stack_file(model) == stack_file(model)


def test_a_port_bound_to_one_address_is_refused_with_its_path() -> None:
    model = _model(ports=[{"target": 8080, "published": "8080", "host_ip": "127.0.0.1"}])
    with pytest.raises(StackRejected) as caught:
        stack_file(model)
    assert caught.value.path == "services.web.ports[0].host_ip"
    assert "127.0.0.1" in caught.value.one_line()


def test_push_command_names_the_registry_or_asks_for_one() -> None:
    assert push_command("127.0.0.1:5000/app:v1") == "docker push 127.0.0.1:5000/app:v1"
    assert push_command("app:v1") == "docker tag app:v1 REGISTRY/app:v1 && docker push " \
        "REGISTRY/app:v1"


def _service(update: str = "completed", replicas: int = 2) -> dict[str, Any]:
    return {"ID": "s1", "UpdateStatus": {"State": update, "Message": f"update {update}"},
            "Spec": {"Name": "shop_web", "Mode": {"Replicated": {"Replicas": replicas}},
                     "TaskTemplate": {"ContainerSpec": {"Image": IMAGE, "Labels": LABELS}}}}


def _task(slot: int, state: str, *, image: str = IMAGE, desired: str = "running",
          created: str = "2026-12-01T09:00:10.123456789Z", code: int = 0) -> dict[str, Any]:
    return {"ID": f"t{slot}{state}", "ServiceID": "s1", "Slot": slot, "DesiredState": desired,
            "CreatedAt": created,
            "Status": {"State": state, "ContainerStatus": {"ContainerID": f"c{slot}",
                                                           "ExitCode": code}},
            "Spec": {"ContainerSpec": {"Image": image, "Labels": LABELS}}}


SINCE = 1796115605.0  # 2026-12-01T09:00:05Z


def _event(action: str, revision: str, cid: str = "c1") -> Event:
    """A container event of a task of ``shop_web`` whose spec is ``revision``."""
    return Event(action=action, container_id=cid, service="", time_nano=0, attributes={
        "com.docker.swarm.service.name": "shop_web", "org.compose-rollback.revision": revision})


def _verdicts(service: dict[str, Any], tasks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    services = parse_services("shop", [service])
    found = parse_tasks({"s1": "web"}, tasks)
    view = gate_view(services, found, wanted=["web"], since=SINCE)
    return [judge(state, restarts_before=0) for state in view]


def test_every_task_of_the_new_spec_running_is_good() -> None:
    verdicts = _verdicts(_service(), [_task(1, "running"), _task(2, "running"),
                                      _task(2, "shutdown", image=OLD, desired="shutdown")])
    assert verdicts == [("good", ""), ("good", "")]


def test_an_old_task_still_running_means_wait() -> None:
    verdicts = _verdicts(_service("updating"), [_task(1, "running"),
                                                _task(2, "running", image=OLD)])
    assert ("good", "") in verdicts
    assert any(v == "wait" and "1 of 2 tasks" in why for v, why in verdicts), verdicts


def test_a_task_of_the_new_spec_that_ended_since_the_rollout_fails_first() -> None:
    verdicts = _verdicts(_service("paused"), [
        _task(1, "complete", desired="shutdown"), _task(1, "starting"),
        _task(2, "running", image=OLD)])
    assert verdicts[0][0] == "fail" and "task ended (complete" in verdicts[0][1]
    assert any("Swarm's update says paused" in why for _, why in verdicts)


def test_a_failed_task_says_what_the_containers_own_die_event_says() -> None:
    """A crash reaches the gate twice at once (the container's ``die``, Swarm's failed task);
    either way the reason reads the same, so a hook or an alert does not depend on a race."""
    crashed = _task(1, "failed", desired="shutdown", code=3)
    crashed["Status"]["Err"] = "task: non-zero exit (3)"
    verdicts = _verdicts(_service("updating"), [crashed, _task(2, "running")])
    assert verdicts[0] == ("fail", "exited with code 3 (its task failed)")
    crashed["Status"]["Err"] = "unhealthy container"  # more than the exit code: kept
    verdicts = _verdicts(_service("updating"), [crashed, _task(2, "running")])
    assert verdicts[0] == ("fail", "exited with code 3 (its task failed: unhealthy container)")


def test_a_task_that_ended_before_the_rollout_is_not_held_against_it() -> None:
    verdicts = _verdicts(_service(), [
        _task(1, "failed", desired="shutdown", created="2026-12-01T08:59:00Z", code=3),
        _task(1, "running"), _task(2, "running")])
    assert verdicts == [("good", ""), ("good", "")]


def test_every_local_only_image_is_named_with_its_push_command() -> None:
    from compose_rollback.errors import LocalOnlyImages

    error = LocalOnlyImages({"web": "shop-web", "api": "127.0.0.1:5000/api:v2"},
                            {"web": push_command("shop-web"),
                             "api": push_command("127.0.0.1:5000/api:v2")})
    line = error.one_line()
    assert "web: shop-web" in line and "api: 127.0.0.1:5000/api:v2" in line
    assert "docker push 127.0.0.1:5000/api:v2" in line and "docker push REGISTRY/shop-web" in line


def test_a_canary_is_refused_on_swarm_with_its_path() -> None:
    from compose_rollback.swarm.stackfile import refuse_compose_only

    refuse_compose_only({"web": {"image": IMAGE, "x-rollback": {"min_healthy": "5s"}}})
    with pytest.raises(StackRejected) as caught:
        refuse_compose_only({"web": {"image": IMAGE, "x-rollback": {"canary": {"replicas": 1}}}})
    assert caught.value.path == "services.web.x-rollback.canary"


def test_only_the_new_specs_containers_decide_on_their_own_events() -> None:
    tasks = SwarmTasks(cast(Engine, None), "shop", since=0.0, services=["web"], oneshot=[],
                       revisions={"web": "4"})

    assert tasks._seen(_event("die", "4")).service == "web"  # decided by the gate at once
    old = tasks._seen(_event("die", "3"))  # an old task stopped by the update: only a wake-up
    assert old.service == "" and old.action == "swarm:die"
    tasks._seen(_event("health_status: unhealthy", "3", cid="c0"))
    tasks._seen(_event("health_status: unhealthy", "4", cid="c2"))
    assert tasks.unhealthy == {"c2"}


def test_a_container_that_turned_unhealthy_is_reported_so_after_swarm_ended_its_task() -> None:
    """The health event is the cause; Swarm stopping the task (SIGTERM's exit code) follows
    it, and a look that finds the task already ended still names the cause."""
    class Stack:
        def __init__(self) -> None:
            self.tasks = [_task(1, "running"), _task(2, "running")]

        def stack_services(self, stack: str) -> list[dict[str, Any]]:
            return [_service("updating")]

        def stack_tasks(self, stack: str) -> list[dict[str, Any]]:
            return self.tasks

    engine = Stack()
    tasks = SwarmTasks(cast(Engine, engine), "shop", since=SINCE, services=["web"],
                       oneshot=[], revisions={"web": "4"})
    tasks._seen(_event("health_status: unhealthy", "4"))
    reason = "turned unhealthy (its HEALTHCHECK failed)"
    assert [judge(s, restarts_before=0)[1] for s in tasks.containers("shop")] == [reason, ""]
    engine.tasks[0] = _task(1, "failed", desired="shutdown", code=143)
    assert judge(tasks.containers("shop")[0], restarts_before=0) == ("fail", reason)
