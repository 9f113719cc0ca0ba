"""The container gate: every container running, healthy where it has a healthcheck, none exited
or restarted, and all of that held for ``min_healthy`` — within ``timeout``.

Driven by the Docker event stream of the project: a ``die``, ``health_status`` or ``oom`` event
wakes the gate at once, so a crash is decided on within a fraction of a second instead of at the
next polling interval. A one-second poll remains as a safety net.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from compose_rollback.dockerdata import ContainerState, Event
from compose_rollback.engine import ENGINE_CALL_LIMIT
from compose_rollback.eventstream import EventStream
from compose_rollback.gates.alertmanager import probe_alertmanager
from compose_rollback.gates.probes import (
    Outcome,
    ProbeRunner,
    probe_exec,
    probe_http,
    probe_http_inside,
    probe_prometheus,
    probe_tcp,
)
from compose_rollback.gates.specs import GateSpec
from compose_rollback.settings import ServiceSettings, Settings, format_duration

POLL_FALLBACK = 1.0


@dataclass(frozen=True)
class GateFailure:
    """Why a gate failed: which service and container, and the evidence."""

    service: str
    container: str
    reason: str
    logs: str = ""

    def summary(self) -> str:
        where = f"{self.service} ({self.container})" if self.container else self.service
        return f"{where}: {self.reason}" if where else self.reason

    def masked(self, mask: Callable[[str], str]) -> GateFailure:
        """The same failure with secrets masked in what the app printed (health-check and
        exec output, log lines), before it is stored or sent anywhere."""
        return replace(self, reason=mask(self.reason), logs=mask(self.logs))


class GateEngine(Protocol):
    def containers(self, project_name: str, *, known: Sequence[str] = (),
                   limit: float = ...) -> list[ContainerState]: ...
    def logs(self, container_id: str, *, tail: int = 20) -> str: ...
    def events(self, project_name: str, *,
               on_event: Callable[[Event], None]) -> EventStream: ...
    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]: ...


def judge(container: ContainerState, *, restarts_before: int,
          oneshot: bool = False) -> tuple[str, str]:
    """One container's verdict: ("fail", why) | ("wait", why) | ("good", "")."""
    if container.failure:
        return "fail", container.failure
    if container.oom_killed:
        return "fail", "was killed for running out of memory (OOM)"
    if oneshot:
        if container.status in ("exited", "dead"):
            return ("good", "") if container.exit_code == 0 else \
                ("fail", f"one-shot job exited with code {container.exit_code}")
        return "wait", "one-shot job still running"
    if container.status in ("exited", "dead"):
        return "fail", f"exited with code {container.exit_code}"
    if container.status == "restarting" or container.restart_count > restarts_before:
        return "fail", f"restarted (exit code {container.exit_code})"
    if container.health == "unhealthy":
        detail = f": {container.health_output}" if container.health_output else ""
        return "fail", f"is unhealthy{detail}"
    if container.status != "running":
        return "wait", f"is {container.status}"
    if container.health == "starting":
        return "wait", "health: starting"
    return "good", ""


@dataclass
class _ServiceWatch:
    """One service's progress through the container gate and its probes."""

    settings: ServiceSettings
    probes: list[ProbeRunner] = field(default_factory=list)
    containers_good: bool = False
    good_since: float | None = None
    last_wait: str = "no container yet"
    running: list[str] = field(default_factory=list)


def wait_healthy(
    engine: GateEngine, *, project_name: str, services: Sequence[str], settings: Settings,
    restarts_before: Mapping[str, int], progress: Callable[[str], None],
    only: Collection[str] | None = None, until: float | None = None,
) -> GateFailure | None:
    """Block until every service has passed (None) or one has failed (its ``GateFailure``).

    ``only``: judge these containers alone (a start-first rollout's new ones; the old ones
    beside them are not this gate's business). ``until`` (a ``time.monotonic()`` deadline,
    ``math.inf`` for ever): watch mode, for a revision already deployed; no soak and no
    timeout, every gate keeps running and the first failure is returned, else None at
    ``until``."""
    wake: queue.Queue[Event | None] = queue.Queue()
    watches = {s: _ServiceWatch(settings.for_service(s)) for s in services}
    project_probes: list[ProbeRunner] = []
    for service, watch in watches.items():
        watch.probes = [_runner(spec, engine, watch, wake) for spec in settings.gates_for(service)]
    project_probes = [_runner(spec, engine, None, wake) for spec in settings.project_gates]
    everything = [p for w in watches.values() for p in w.probes] + project_probes
    start = time.monotonic()
    # Reads of the engine may take until the gate's own timeout: under the load of a large
    # deploy (200 containers starting and probing their health) the engine answers slowly,
    # which says nothing about the release. Watch mode keeps the default limit.
    deadline = start + max((w.settings.timeout for w in watches.values()), default=0.0)
    reported: dict[str, str] = {}
    events: list[Event] = []
    last: dict[str, ContainerState] = {}  # the latest inspection, by container id
    try:
        with engine.events(project_name, on_event=wake.put):
            while True:
                if only is not None:
                    events = [e for e in events if e.container_id in only]
                died = _died(events, watches)
                if died is not None:  # decided from the event itself: no docker round trip
                    container_id, failure = died
                    return replace(failure, logs=engine.logs(container_id, tail=10))
                now = time.monotonic()
                everyone = _healthy_from_events(last, events)
                if everyone is None:
                    limit = ENGINE_CALL_LIMIT if until is not None else \
                        max(ENGINE_CALL_LIMIT, deadline - now)
                    everyone = engine.containers(project_name, known=list(last), limit=limit)
                last = {c.id: c for c in everyone}
                states = [c for c in everyone if c.service in watches and not c.oneoff
                          and (only is None or c.id in only)]
                found = _check(states, watches, restarts_before)
                if found is not None:
                    return _with_logs(engine, found, states)
                found = _probes(watches, project_probes, now)
                if found is not None:
                    return found
                if until is not None:  # watch mode: only a failure or the deadline ends it
                    if now >= until:
                        return None
                    events = _sleep_until_event(wake, min(POLL_FALLBACK, until - now))
                    continue
                pending = {s: w for s, w in watches.items()
                           if w.good_since is None or now - w.good_since < w.settings.min_healthy}
                if not pending and all(p.passed for p in project_probes):
                    return None
                found = _timed_out(pending or watches, project_probes, start, now)
                if found is not None:
                    return found
                for service, watch in pending.items():
                    line = _progress_line(service, watch)
                    if reported.get(service) != line:
                        reported[service] = line
                        progress(line)
                events = _sleep_until_event(wake, _next_wake(pending, start, now))
    finally:
        for probe in everything:
            probe.stop()


def _runner(spec: GateSpec, engine: GateEngine, watch: _ServiceWatch | None,
            wake: queue.Queue[Event | None]) -> ProbeRunner:
    def check() -> Outcome:
        running = watch.running if watch is not None else []
        if spec.kind == "exec":
            return probe_exec(spec, engine, running)
        if spec.kind == "http":
            return probe_http_inside(spec, engine, running) if spec.inside else probe_http(spec)
        if spec.kind == "tcp":
            return probe_tcp(spec)
        if spec.kind == "alertmanager":
            return probe_alertmanager(spec)
        return probe_prometheus(spec)

    return ProbeRunner(spec, check, lambda: wake.put(None))


def _check(states: Sequence[ContainerState], watches: Mapping[str, _ServiceWatch],
           restarts_before: Mapping[str, int]) -> GateFailure | None:
    for service, watch in watches.items():
        mine = [c for c in states if c.service == service]
        verdict, why = ("wait", "no container yet") if not mine else ("good", "")
        for container in mine:
            v, w = judge(container, restarts_before=restarts_before.get(container.id, 0),
                         oneshot=watch.settings.oneshot)
            if v == "fail":
                return GateFailure(service, container.name, w)
            if v == "wait":
                verdict, why = v, f"{container.name} {w}"
        watch.running = [c.id for c in mine if c.status == "running"]
        watch.containers_good = verdict == "good"
        if not watch.containers_good:
            watch.good_since, watch.last_wait = None, why
    return None


def _probes(watches: Mapping[str, _ServiceWatch], project_probes: Sequence[ProbeRunner],
            now: float) -> GateFailure | None:
    """Arm probes whose containers are good; fail on a failed probe; start soaks."""
    all_good = all(w.containers_good for w in watches.values())
    for probe in project_probes:
        probe.arm(all_good)
    for watch in watches.values():
        for probe in watch.probes:
            probe.arm(watch.containers_good)
        if watch.containers_good and not all(p.passed for p in watch.probes):
            waiting = next(p for p in watch.probes if not p.passed)
            watch.good_since, watch.last_wait = None, f"gate {waiting.spec.describe()}: " \
                f"{waiting.last.detail}"
        elif watch.containers_good and watch.good_since is None:
            watch.good_since = now
    for probe in [*project_probes, *(p for w in watches.values() for p in w.probes)]:
        failed = probe.failed
        if failed is not None:
            return GateFailure(probe.spec.service or "", "", f"gate {probe.spec.describe()} "
                               f"failed: {failed.detail}")
    return None


def _timed_out(pending: Mapping[str, _ServiceWatch], project_probes: Sequence[ProbeRunner],
               start: float, now: float) -> GateFailure | None:
    for service, watch in pending.items():
        if now - start > watch.settings.timeout:
            return GateFailure(service, "", f"not healthy after "
                               f"{format_duration(watch.settings.timeout)} ({watch.last_wait})")
    limit = max(w.settings.timeout for w in pending.values()) if pending else 0.0
    for probe in project_probes:
        if not probe.passed and now - start > limit:
            return GateFailure("", "", f"gate {probe.spec.describe()} did not pass within "
                               f"{format_duration(limit)}: {probe.last.detail}")
    return None


class ServiceLine(str):
    """A progress line about one service; a live view redraws these in place."""

    service: str

    def __new__(cls, service: str, text: str) -> ServiceLine:
        line = super().__new__(cls, f"{service}: {text}")
        line.service = service
        return line


def _progress_line(service: str, watch: _ServiceWatch) -> ServiceLine:
    if watch.good_since is None:
        return ServiceLine(service, f"waiting ({watch.last_wait})")
    if watch.settings.oneshot:
        return ServiceLine(service, "completed (exit 0)")
    return ServiceLine(service, f"healthy, soaking for "
                       f"{format_duration(watch.settings.min_healthy)}")


def _next_wake(pending: Mapping[str, _ServiceWatch], start: float, now: float) -> float:
    times = [now + POLL_FALLBACK]
    for watch in pending.values():
        times.append(start + watch.settings.timeout)
        if watch.good_since is not None:
            times.append(watch.good_since + watch.settings.min_healthy)
    return max(0.0, min(times) - now)


def _sleep_until_event(wake: queue.Queue[Event | None], timeout: float) -> list[Event]:
    """Wait for the next event (or probe result); return every event that came meanwhile."""
    try:
        first = wake.get(timeout=timeout)
    except queue.Empty:
        return []
    burst = [first]
    while True:  # drain the burst: one inspection answers all of it
        try:
            burst.append(wake.get_nowait())
        except queue.Empty:
            return [e for e in burst if e is not None]


def _died(events: Sequence[Event], watches: Mapping[str, _ServiceWatch],
          ) -> tuple[str, GateFailure] | None:
    """A ``die`` of a watched, long-running service's container fails the gate at once."""
    for event in events:
        watch = watches.get(event.service)
        if (event.action == "die" and watch is not None and not watch.settings.oneshot
                and not event.oneoff):
            code = "" if event.exit_code is None else f" with code {event.exit_code}"
            return event.container_id, GateFailure(event.service, event.name,
                                                   f"exited{code}")
    return None


def _healthy_from_events(last: Mapping[str, ContainerState], events: Sequence[Event],
                         ) -> list[ContainerState] | None:
    """The containers as they are now, when the events since the last inspection only say
    that some of them turned healthy (no inspection needed: any exit, restart, stop or change
    of health would have come as an event too); None when they must be inspected."""
    if not last or not events:
        return None
    if not all(e.action == "health_status: healthy" and e.container_id in last for e in events):
        return None
    now = dict(last)
    for event in events:
        now[event.container_id] = replace(now[event.container_id], health="healthy")
    return list(now.values())


def _with_logs(engine: GateEngine, failure: GateFailure,
               states: Sequence[ContainerState]) -> GateFailure:
    container = next((c for c in states if c.name == failure.container), None)
    if container is None:
        return failure
    return GateFailure(failure.service, failure.container, failure.reason,
                       engine.logs(container.id, tail=10))
