"""The container gate decides a crash from the ``die`` event alone, with the poll disabled.

The engine seam is a script: its inspection always says the container is running, so only the
event can fail the gate; the safety-net poll is set to an hour, so nothing but the event can
wake the gate before the soak ends.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence

import pytest

from compose_rollback.dockerdata import ContainerState, Event
from compose_rollback.gates import container
from compose_rollback.gates.container import GateFailure, wait_healthy
from compose_rollback.settings import Settings

CONTAINER = "c-web"
NAME = "p-web-1"
SOAK = 1.5  # seconds: what a gate that missed the event would sit out before passing
#: The soak of the tests that must pass: sitting it out is what they assert, the same at any
#: length, and each second of it is a second of a fast-tier worker doing nothing.
SHORT_SOAK = 0.3


class _Stream:
    def close(self) -> None:
        return None

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *_: object) -> None:
        return None


class ScriptedEngine:
    """Inspection: one running container without a healthcheck, every time it is asked.

    ``die_after_inspection``: right after the first inspection, the event stream reports that
    container's ``die`` (exit 3), as Docker does when a process exits between two looks.
    """

    def __init__(self, *, die_after_inspection: bool, service: str = "web") -> None:
        self.die_after_inspection = die_after_inspection
        self.service = service
        self.on_event: Callable[[Event], None] | None = None
        self.inspections = 0
        self.died_at: float | None = None
        self.logs_of: list[str] = []
        self.limits: list[float] = []

    def containers(self, project_name: str, *, known: Sequence[str] = (),
                   limit: float = 30.0) -> list[ContainerState]:
        self.inspections += 1
        self.limits.append(limit)
        if self.die_after_inspection and self.inspections == 1:
            assert self.on_event is not None, "the gate inspected before listening to events"
            self.died_at = time.monotonic()
            self.on_event(Event(action="die", container_id=CONTAINER, service=self.service,
                                time_nano=time.time_ns(), name=NAME, exit_code=3))
        return [ContainerState(id=CONTAINER, name=NAME, service="web", status="running",
                               exit_code=0, health=None, restart_count=0, image_id="sha256:x",
                               oom_killed=False, oneoff=False)]

    def logs(self, container_id: str, *, tail: int = 20) -> str:
        self.logs_of.append(container_id)
        return "crashing with exit code 3"

    def events(self, project_name: str, *, on_event: Callable[[Event], None]) -> _Stream:
        self.on_event = on_event
        return _Stream()

    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]:
        raise AssertionError("no exec gate in these tests")


@pytest.fixture(autouse=True)
def _poll_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container, "POLL_FALLBACK", 3600.0)


def _gate(engine: ScriptedEngine, soak: float = SOAK) -> tuple[GateFailure | None, float]:
    began = time.monotonic()
    found = wait_healthy(engine, project_name="p", services=["web"],
                         settings=Settings(timeout=60.0, min_healthy=soak),
                         restarts_before={}, progress=lambda _: None)
    return found, time.monotonic() - began


def test_the_die_event_alone_fails_the_gate_at_once() -> None:
    engine = ScriptedEngine(die_after_inspection=True)
    found, took = _gate(engine)
    assert found == GateFailure("web", NAME, "exited with code 3", "crashing with exit code 3")
    assert engine.inspections == 1, "the gate asked docker again instead of trusting the event"
    assert engine.logs_of == [CONTAINER]  # the logs of the container the event named
    assert took < SOAK / 3, f"decided after {took:.2f}s: not woken by the event"


def test_without_the_event_the_same_inspections_pass_the_soak() -> None:
    """The control: what the inspections alone say is "healthy", so the event decided."""
    engine = ScriptedEngine(die_after_inspection=False)
    found, took = _gate(engine, SHORT_SOAK)
    assert found is None
    assert took >= SHORT_SOAK


def test_a_die_of_a_service_not_watched_does_not_fail_the_gate() -> None:
    engine = ScriptedEngine(die_after_inspection=True, service="other")
    found, took = _gate(engine, SHORT_SOAK)
    assert found is None and took >= SHORT_SOAK
    assert engine.died_at is not None, "the other service's die event was never sent"


def test_a_gate_lets_its_reads_of_the_engine_take_until_its_own_timeout() -> None:
    """A deploy of 200 services on 2 cores: the engine took more than 30 s to answer one
    inspection, and the gate failed a good release as "engine unreachable"."""
    engine = ScriptedEngine(die_after_inspection=False)
    began = time.monotonic()
    found = wait_healthy(engine, project_name="p", services=["web"],
                         settings=Settings(timeout=300.0, min_healthy=0.0),
                         restarts_before={}, progress=lambda _: None)
    assert found is None
    assert engine.limits, "the gate never inspected"
    assert 300.0 - (time.monotonic() - began) - 1 <= engine.limits[0] <= 300.0, engine.limits


def test_a_short_gate_keeps_the_engines_own_limit() -> None:
    engine = ScriptedEngine(die_after_inspection=False)
    found = wait_healthy(engine, project_name="p", services=["web"],
                         settings=Settings(timeout=5.0, min_healthy=0.0),
                         restarts_before={}, progress=lambda _: None)
    assert found is None
    assert engine.limits and set(engine.limits) == {30.0}, engine.limits


def test_watch_mode_keeps_the_engines_own_limit() -> None:
    engine = ScriptedEngine(die_after_inspection=False)
    found = wait_healthy(engine, project_name="p", services=["web"],
                         settings=Settings(timeout=300.0, min_healthy=0.0),
                         restarts_before={}, progress=lambda _: None,
                         until=time.monotonic() + 0.2)
    assert found is None
    assert engine.limits and set(engine.limits) == {30.0}, engine.limits


def test_an_inspection_of_many_containers_gets_more_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine inspects containers one after the other: 200 of them under load took more
    than the 30 s that one engine call is given."""
    from compose_rollback import engine as engine_module

    limits: list[float] = []

    def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        limits.append(float(kwargs["timeout"]))  # type: ignore[arg-type]
        return subprocess.CompletedProcess(args, 0, "" if "ps" in args else "[]", "")

    monkeypatch.setattr(engine_module.subprocess, "run", run)
    real = engine_module.Engine()
    real.containers("p", known=["c1"])
    real.containers("p", known=[f"c{i}" for i in range(200)])
    real.containers("p", known=["c1"], limit=250.0)
    # each: one inspection (the containers are gone: "[]"), then a ps (that finds none)
    assert limits == [30.5, 30.0, 130.0, 30.0, 250.0, 250.0], limits
