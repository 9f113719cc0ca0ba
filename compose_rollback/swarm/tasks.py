"""Swarm services and tasks (the engine's JSON) read as the gates and ``status`` need them.

A task is *of the new spec* when its container spec names the service's image and labels
(among them the revision label, which changes whenever the service's definition changes):
Swarm itself compares the whole task spec, which its API does not return as it stored it.

The gate judges tasks through the same ``ContainerState`` the Compose gate judges containers
with: a task of the new spec that is running (Swarm reports a task with a healthcheck running
only once it is healthy), one still starting, and every task of the new spec that ended since
the rollout began (a crash; or a container Swarm stopped because it turned unhealthy, which
ends ``complete`` when the app exits 0 on SIGTERM) as a failure. Swarm's own verdicts count
too: an update it paused (or rolled back) fails the gate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from compose_rollback.dockerdata import ContainerState

STACK_LABEL = "com.docker.stack.namespace"
_ENDED = ("complete", "failed", "rejected", "shutdown", "orphaned", "remove")
_BAD_UPDATE = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


@dataclass(frozen=True)
class Service:
    """A Swarm service of the stack, as ``docker service inspect`` describes it."""

    name: str  # the compose service (the Swarm service is <stack>_<name>)
    image: str
    labels: Mapping[str, str]
    replicas: int | None  # None: global mode
    update_state: str
    update_message: str


@dataclass(frozen=True)
class Task:
    """A Swarm task of the stack, as ``docker service ps`` lists it."""

    id: str
    service: str  # the compose service
    name: str  # web.2, as `docker service ps` names it
    state: str
    desired: str
    error: str
    exit_code: int
    created: float  # seconds since the epoch
    container_id: str
    image: str
    labels: Mapping[str, str]

    def of(self, service: Service) -> bool:
        return self.image == service.image and dict(self.labels) == dict(service.labels)


def parse_services(stack: str, data: Sequence[Mapping[str, Any]]) -> dict[str, Service]:
    services = {}
    for raw in data:
        spec = raw.get("Spec") or {}
        container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        name = str(spec.get("Name", "")).removeprefix(f"{stack}_")
        mode = spec.get("Mode") or {}
        replicas = (mode.get("Replicated") or {}).get("Replicas") if "Global" not in mode \
            else None
        update = raw.get("UpdateStatus") or {}
        services[name] = Service(name, str(container.get("Image", "")),
                                 dict(container.get("Labels") or {}),
                                 int(replicas) if replicas is not None else None,
                                 str(update.get("State", "")), str(update.get("Message", "")))
    return services


def parse_tasks(services: Mapping[str, str], data: Sequence[Mapping[str, Any]]) -> list[Task]:
    """``services``: Swarm service id -> compose service name."""
    tasks = []
    for raw in data:
        service = services.get(str(raw.get("ServiceID", "")))
        if service is None:
            continue
        status = raw.get("Status") or {}
        container = status.get("ContainerStatus") or {}
        spec = (raw.get("Spec") or {}).get("ContainerSpec") or {}
        slot = raw.get("Slot")
        tasks.append(Task(
            id=str(raw.get("ID", "")), service=service,
            name=f"{service}.{slot}" if slot else f"{service}.{str(raw.get('NodeID', ''))[:12]}",
            state=str(status.get("State", "")), desired=str(raw.get("DesiredState", "")),
            error=str(status.get("Err") or ""), exit_code=int(container.get("ExitCode") or 0),
            created=_seconds(str(raw.get("CreatedAt", ""))),
            container_id=str(container.get("ContainerID") or ""),
            image=str(spec.get("Image", "")), labels=dict(spec.get("Labels") or {})))
    return tasks


def _seconds(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds (Python reads microseconds at most)."""
    if not stamp:
        return 0.0
    head, _, rest = stamp.rstrip("Z").partition(".")
    fraction = "".join(c for c in rest if c.isdigit())[:6] or "0"
    return datetime.fromisoformat(f"{head}.{fraction}+00:00").timestamp()


def gate_view(services: Mapping[str, Service], tasks: Sequence[Task], *,
              wanted: Sequence[str], since: float,
              oneshot: Sequence[str] = ()) -> list[ContainerState]:
    """The tasks of the new spec of each wanted service, as the container gate judges them."""
    states: list[ContainerState] = []
    for name in wanted:
        service = services.get(name)
        if service is None:
            states.append(_state(name, "the service", "missing (no Swarm service yet)"))
            continue
        mine = [t for t in tasks if t.service == name and t.of(service)]
        for task in mine:  # a task's own end comes first: it says more than Swarm's verdict
            if task.state in _ENDED and task.created >= since and name not in oneshot:
                states.append(_ended(task))
            elif task.desired == "running" or (name in oneshot and task.state == "complete"):
                states.append(_task_state(task, oneshot=name in oneshot))
        if service.update_state in _BAD_UPDATE:
            states.append(_state(name, "", "", failure=f"Swarm's update says "
                                 f"{service.update_state}: {service.update_message}"))
        live = [t for t in mine if t.desired == "running" and t.state == "running"]
        if service.replicas is not None and len(live) < service.replicas \
                and name not in oneshot:
            states.append(_state(name, "the service", f"updating ({len(live)} of "
                                 f"{service.replicas} tasks of the new spec running)"))
    return states


def _ended(task: Task) -> ContainerState:
    if task.state == "failed" and task.exit_code:
        # The container exited on its own: said as its own ``die`` event says it (the two
        # arrive at the same moment, and which one the gate reads first is a race), with what
        # Swarm adds beyond its usual "task: non-zero exit (N)".
        extra = "" if task.error in ("", f"task: non-zero exit ({task.exit_code})") \
            else f": {task.error}"
        return _state(task.service, task.name, "", container=task.container_id,
                      failure=f"exited with code {task.exit_code} (its task failed{extra})")
    why = task.error or ("Swarm stopped it (its container exited or turned unhealthy)"
                         if task.state in ("complete", "shutdown") else task.state)
    return _state(task.service, task.name, "", container=task.container_id,
                  failure=f"task ended ({task.state}, exit code {task.exit_code}): {why}")


def _task_state(task: Task, *, oneshot: bool) -> ContainerState:
    status = task.state
    if oneshot and task.state == "complete":
        status = "exited"
    return _state(task.service, task.name, status, container=task.container_id,
                  exit_code=task.exit_code)


def _state(service: str, name: str, status: str, *, container: str = "", failure: str = "",
           exit_code: int = 0) -> ContainerState:
    return ContainerState(id=container or f"swarm:{service}:{name}", name=name, service=service,
                          status=status or "failed", exit_code=exit_code, health=None,
                          restart_count=0, image_id="", oom_killed=False, oneoff=False,
                          failure=failure)
