"""Rollouts on Docker Swarm: ``docker stack deploy`` of the revision, then our gates.

Swarm's own ``update_config`` does the replacing (parallelism, order, delay, monitor); the
gate then watches the tasks through the Swarm API until every task of the new spec runs (and
so is healthy: Swarm reports a task with a healthcheck running only once it is) for
``min_healthy``, with the probes of the revision on top; that soak runs beside Swarm's own
``monitor``, and the rollout is done when Swarm's update has ended too. On a failure
``deploy`` puts the last good revision back the same way: another ``stack deploy``, gated
again. Swarm's own automatic rollback is switched off in what we apply (``stackfile``), so it
never races ours.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import replace
from typing import TYPE_CHECKING

from compose_rollback.dockerdata import ContainerState, Event
from compose_rollback.engine import Engine
from compose_rollback.errors import LocalOnlyImages, NotASwarm, StackRejected
from compose_rollback.eventstream import EventStream
from compose_rollback.gates.container import GateFailure, judge, wait_healthy
from compose_rollback.overlay import parse
from compose_rollback.pins import Pin
from compose_rollback.rollout.base import COMPLETED, FAILED, Outcome
from compose_rollback.rollout.config import RolloutConfig
from compose_rollback.rollout.labels import REVISION_LABEL
from compose_rollback.settings import Settings
from compose_rollback.swarm.stackfile import refuse_compose_only, stack_file
from compose_rollback.swarm.tasks import Service, Task, gate_view, parse_services, parse_tasks

if TYPE_CHECKING:
    from compose_rollback.context import Context
    from compose_rollback.revisions import Revision


class SwarmOrchestrator:
    """Rollouts of a project as the Swarm stack of the same name."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.stack = ctx.project.name

    def check(self, *, pins: Mapping[str, Pin], text: str) -> None:
        """Refuse, before anything is recorded or changed, what Swarm cannot run: an engine
        that is no Swarm manager, images other nodes cannot pull, keys the stack loader
        rejects."""
        state = self.ctx.engine.swarm_state()
        if state != "active":
            raise NotASwarm(state)
        refuse_compose_only(parse(text)["services"])
        local = {s: p.ref for s, p in pins.items() if p.local}
        if local:
            raise LocalOnlyImages(local, {s: push_command(ref) for s, ref in local.items()})
        stack = self._stack_text(text)
        problem = self.ctx.engine.stack_check(stack)
        if problem:
            raise StackRejected("", f"docker stack deploy rejects the revision: {problem}")

    def roll_out(self, *, revision: Revision, leaving: Revision | None, settings: Settings,
                 back: bool, restarts: Mapping[str, int],
                 leaving_failed: bool = False) -> Outcome:
        # Swarm knows what runs; its tasks, not containers, are judged (and replaced)
        del leaving, restarts, leaving_failed
        text = self.ctx.store.path_of(revision).read_text(encoding="utf-8")
        stack = self._stack_text(text)
        since = time.time()
        self.ctx.progress(f"docker stack deploy {self.stack} (Swarm's update_config rolls)")
        self.ctx.engine.stack_deploy(self.stack, text=stack)
        oneshot = [s for s in revision.services if settings.for_service(s).oneshot]
        specs, found = self.read()  # the new spec of each service, as Swarm took it
        tasks = SwarmTasks(self.ctx.engine, self.stack, since=since,
                           services=revision.services, oneshot=oneshot,
                           revisions={s: v.labels.get(REVISION_LABEL, "")
                                      for s, v in specs.items() if s not in oneshot},
                           before={t.id for t in found if t.created < since})
        began = time.monotonic()
        failure = wait_healthy(tasks, project_name=self.stack, services=list(revision.services),
                               settings=settings, restarts_before={},
                               progress=self.ctx.progress)
        if failure is None:
            limit = max(settings.for_service(s).timeout for s in revision.services)
            failure = self._until_swarm_done(tasks, deadline=began + limit)
        if failure is None:
            return Outcome(COMPLETED)
        rollout = settings.rollout or RolloutConfig()
        action = rollout.of(failure.service).config(back=back).failure_action \
            if failure.service else "rollback"
        return Outcome(FAILED, failure, action=action)

    def _until_swarm_done(self, tasks: SwarmTasks, *, deadline: float) -> GateFailure | None:
        """Swarm's update ends one ``monitor`` after its last task started. Our soak ran beside
        that watch, not after it (which cost a whole ``monitor`` on every rollout, the restore
        of a broken release included); the rollout is done when both are: until Swarm's is,
        what fails the gate still fails it (a task of the new spec that ends, a paused
        update)."""
        said = False
        while True:
            for state in tasks.containers(self.stack):
                verdict, why = judge(state, restarts_before=0,
                                     oneshot=state.service in tasks.oneshot)
                if verdict == "fail":
                    return GateFailure(state.service, state.name, why)
            updating = [n for n, s in tasks.services_seen.items() if s.update_state == "updating"]
            if not updating:
                return None
            if not said:
                said = True
                self.ctx.progress(f"{', '.join(updating)}: soaked; waiting for Swarm's update "
                                  "to end (its monitor)")
            if time.monotonic() >= deadline:
                return GateFailure(updating[0], "", "Swarm's update did not end within the "
                                   "gate's timeout")
            time.sleep(0.25)

    def discard(self, *, revision: Revision, leaving: Revision,
                services: Sequence[str]) -> None:
        """Nothing to kill by hand: the next ``stack deploy`` replaces the failed tasks."""
        del revision, leaving, services

    def what_runs(self) -> str:
        """Which revision each service's running tasks come from: ``web: 2 of revision 4``."""
        services, tasks = self.read()
        counts: dict[tuple[str, str], int] = {}
        for task in tasks:
            if task.service in services and task.state == "running":
                key = (task.service, task.labels.get(REVISION_LABEL, "?"))
                counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{s}: {n} of revision {r}" for (s, r), n in sorted(counts.items()))

    def read(self) -> tuple[dict[str, Service], list[Task]]:
        return read_stack(self.ctx.engine, self.stack)

    def _stack_text(self, text: str) -> str:
        return stack_file(self.ctx.engine.stack_model(self.ctx.project, text=text))


def read_stack(engine: Engine, stack: str) -> tuple[dict[str, Service], list[Task]]:
    """The stack's services (by compose name) and every task Swarm keeps of them."""
    raw = engine.stack_services(stack)
    services = parse_services(stack, raw)
    ids = {str(r.get("ID", "")): name for r, name in zip(raw, services, strict=False)}
    return services, parse_tasks(ids, engine.stack_tasks(stack))


def push_command(ref: str) -> str:
    """How to get a local image into a registry: push it, or tag it into one first."""
    first = ref.split("/", 1)[0]
    if "/" in ref and ("." in first or ":" in first or first == "localhost"):
        return f"docker push {ref}"
    return f"docker tag {ref} REGISTRY/{ref} && docker push REGISTRY/{ref}"


class SwarmTasks:
    """The container gate's engine, answered from the Swarm API (see ``swarm.tasks``)."""

    def __init__(self, engine: Engine, stack: str, *, since: float,
                 services: Sequence[str], oneshot: Sequence[str],
                 revisions: Mapping[str, str], before: Set[str] = frozenset()) -> None:
        self.engine, self.stack, self.since = engine, stack, since
        self.services, self.oneshot = services, oneshot
        self.revisions = revisions  # service -> revision label of its new spec
        # Tasks that were there before this rollout: when a restore goes back to the spec
        # they carry, a stop the interrupted update had begun ends one of them now (seen at
        # two nodes, stop-first); that is no failure of the restore, and not its task.
        self.before = before
        self.unhealthy: set[str] = set()  # containers of the new spec that turned unhealthy
        self.services_seen: dict[str, Service] = {}  # the services as the last look found them

    def containers(self, project_name: str, *, known: Sequence[str] = (),
                   limit: float = 0.0) -> list[ContainerState]:
        del project_name, known, limit  # the stack's reads keep their own limits
        services, tasks = read_stack(self.engine, self.stack)
        self.services_seen = services
        states = gate_view(services, tasks, wanted=self.services, since=self.since,
                           oneshot=self.oneshot)
        # A container that turned unhealthy is reported so even when Swarm has ended its task
        # by the time this look reads it: the health event is the cause, the task's end
        # (SIGTERM's exit code) its consequence.
        return [replace(s, failure="turned unhealthy (its HEALTHCHECK failed)")
                if s.id in self.unhealthy else s for s in states]

    def logs(self, container_id: str, *, tail: int = 20) -> str:
        return "" if container_id.startswith("swarm:") else \
            self.engine.logs(container_id, tail=tail)

    def events(self, project_name: str, *, on_event: Callable[[Event], None]) -> EventStream:
        """A container of a new spec (its revision label says so) that dies fails the gate
        at once, as on Compose, and one that turns unhealthy fails it on the next look,
        before Swarm has even stopped it. Any other event only wakes the gate, which then
        asks Swarm: renamed, so that the gate neither decides on it nor skips asking."""
        del project_name
        return self.engine.stack_events(self.stack, on_event=lambda e: on_event(self._seen(e)))

    def _seen(self, event: Event) -> Event:
        labels = event.attributes
        service = labels.get("com.docker.swarm.service.name", "").removeprefix(f"{self.stack}_")
        new = service in self.revisions and labels.get(REVISION_LABEL) == self.revisions[service] \
            and labels.get("com.docker.swarm.task.id", "") not in self.before
        if new and event.action in ("die", "oom"):
            return replace(event, service=service)
        if new and event.action == "health_status: unhealthy":
            self.unhealthy.add(event.container_id)
        return replace(event, action=f"swarm:{event.action}", service="")

    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]:
        """exec and in-container http gates: in a running task's container, which must be on
        the node this engine is (a task on another node cannot be reached from here)."""
        if container_id.startswith("swarm:"):
            return 1, "no running task of the new spec on this node"
        code, output = self.engine.exec_in(container_id, command, timeout=timeout)
        if code != 0 and "No such container" in output:
            return code, ("the task's container is not on this node: exec gates on Swarm run "
                          "only in tasks on the node this engine is")
        return code, output
