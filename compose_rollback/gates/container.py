"""The container gate: every container running, healthy where it has a healthcheck, none exited
or restarted, and all of that held for ``min_healthy`` — within ``timeout``.

Driven by the Docker event stream of the project: a ``die``, ``health_status`` or ``oom`` event
wakes the gate at once, so a crash is decided on within a fraction of a second instead of at the
next polling interval. A one-second poll remains as a safety net.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from compose_rollback.engine import ContainerState, Event, EventStream
from compose_rollback.settings import ServiceSettings, format_duration

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
        return f"{where}: {self.reason}"


class ContainerEngine(Protocol):
    def containers(self, project_name: str) -> list[ContainerState]: ...
    def logs(self, container_id: str, *, tail: int = 20) -> str: ...
    def events(self, project_name: str, *,
               on_event: Callable[[Event], None]) -> EventStream: ...


def judge(container: ContainerState, *, restarts_before: int) -> tuple[str, str]:
    """One container's verdict: ("fail", why) | ("wait", why) | ("good", "")."""
    if container.oom_killed:
        return "fail", "was killed for running out of memory (OOM)"
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
    settings: ServiceSettings
    good_since: float | None = None
    last_wait: str = "no container yet"


def wait_healthy(
    engine: ContainerEngine, *, project_name: str, services: Sequence[str],
    settings: Mapping[str, ServiceSettings], restarts_before: Mapping[str, int],
    progress: Callable[[str], None],
) -> GateFailure | None:
    """Block until every service has passed (None) or one has failed (its ``GateFailure``)."""
    wake: queue.Queue[Event] = queue.Queue()
    watches = {s: _ServiceWatch(settings[s]) for s in services}
    start = time.monotonic()
    reported: dict[str, str] = {}
    with engine.events(project_name, on_event=wake.put):
        while True:
            now = time.monotonic()
            states = [c for c in engine.containers(project_name)
                      if c.service in watches and not c.oneoff]
            failure = _check(states, watches, restarts_before, now)
            if failure is not None:
                return _with_logs(engine, failure, states)
            pending = {s: w for s, w in watches.items()
                       if w.good_since is None or now - w.good_since < w.settings.min_healthy}
            if not pending:
                return None
            for service, watch in pending.items():
                if now - start > watch.settings.timeout:
                    return GateFailure(service, "", f"not healthy after "
                                       f"{format_duration(watch.settings.timeout)} "
                                       f"({watch.last_wait})")
                line = _progress_line(service, watch, now)
                if reported.get(service) != line:
                    reported[service] = line
                    progress(line)
            _sleep_until_event(wake, _next_wake(pending, start, now))


def _check(states: Sequence[ContainerState], watches: Mapping[str, _ServiceWatch],
           restarts_before: Mapping[str, int], now: float) -> GateFailure | None:
    for service, watch in watches.items():
        mine = [c for c in states if c.service == service]
        verdict, why = ("wait", "no container yet") if not mine else ("good", "")
        for container in mine:
            v, w = judge(container, restarts_before=restarts_before.get(container.id, 0))
            if v == "fail":
                return GateFailure(service, container.name, w)
            if v == "wait":
                verdict, why = v, f"{container.name} {w}"
        if verdict == "good":
            watch.good_since = watch.good_since if watch.good_since is not None else now
        else:
            watch.good_since, watch.last_wait = None, why
    return None


def _progress_line(service: str, watch: _ServiceWatch, now: float) -> str:
    if watch.good_since is None:
        return f"{service}: waiting ({watch.last_wait})"
    return f"{service}: healthy, soaking for {format_duration(watch.settings.min_healthy)}"


def _next_wake(pending: Mapping[str, _ServiceWatch], start: float, now: float) -> float:
    times = [now + POLL_FALLBACK]
    for watch in pending.values():
        times.append(start + watch.settings.timeout)
        if watch.good_since is not None:
            times.append(watch.good_since + watch.settings.min_healthy)
    return max(0.0, min(times) - now)


def _sleep_until_event(wake: queue.Queue[Event], timeout: float) -> None:
    try:
        wake.get(timeout=timeout)
    except queue.Empty:
        return
    while True:  # drain the burst: one inspection answers all of it
        try:
            wake.get_nowait()
        except queue.Empty:
            return


def _with_logs(engine: ContainerEngine, failure: GateFailure,
               states: Sequence[ContainerState]) -> GateFailure:
    container = next((c for c in states if c.name == failure.container), None)
    if container is None:
        return failure
    return GateFailure(failure.service, failure.container, failure.reason,
                       engine.logs(container.id, tail=10))
