"""2. Failure detection latency: a container's exit to our decision.

A good revision runs; ``up`` deploys the ``crash`` image with ``CRASH_AFTER`` set so the
container exits (code 3) a moment after ``up`` started its gate. Per run:

- ``finished_at``: the crashed container's ``State.FinishedAt`` (inspected the moment its
  ``die`` event arrives, before the restore removes it), and the ``die`` event's own time;
- ``decision``: when the harness read the CLI's ``revision N failed:`` progress line from its
  stderr (line-buffered pipe; the CLI prints it as soon as the gate returns its failure).

latency = decision - finished_at (and decision - die event).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bench.common import (
    BenchError,
    DockerEvent,
    EventLog,
    Workspace,
    cli_env,
    compose_text,
    docker,
    log,
    ours,
    streamed,
    summarize,
)


def parse_time(stamp: str) -> float:
    """Docker's RFC 3339 time with nanoseconds -> epoch seconds."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class _FinishedAt:
    """Inspects a crashed container as soon as its ``die`` event arrives."""

    def __init__(self) -> None:
        self.found: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, event: DockerEvent) -> None:
        if event.action != "die" or event.attributes.get("exitCode") in ("0", "143"):
            return
        out = docker("container", "inspect", "--format", "{{.State.FinishedAt}}", event.id,
                     expect=None)
        if out.returncode == 0 and out.stdout.strip():
            with self._lock:
                self.found[event.id] = parse_time(out.stdout.strip())


def _crash_after(start: float) -> Callable[[DockerEvent], bool]:
    def crashed(event: DockerEvent) -> bool:
        return (event.action == "die" and event.time >= start
                and event.attributes.get("exitCode") not in ("0", "143"))
    return crashed


def run(space: Workspace, *, runs: int, crash_after: float) -> dict[str, Any]:
    images = space.images
    project = space.project(compose_text({"app": images.local("healthy")},
                                         healthcheck=space.healthcheck))
    first = project.run("up", "--min-healthy", "0", env=cli_env(), timeout=300)
    if first.returncode != 0:
        raise BenchError(f"detect: first deploy failed:\n{first.stderr}")
    crash = compose_text({"app": images.local("crash")}, env={"CRASH_AFTER": str(crash_after)},
                         healthcheck=space.healthcheck)
    by_finished: list[float] = []
    by_event: list[float] = []
    gate_started: list[float] = []
    for index in range(runs):
        project.write(crash)
        finished = _FinishedAt()
        with EventLog(f"com.docker.compose.project={project.name}",
                      on_event=finished) as events:
            result = streamed([*ours(project), "up", "--min-healthy", "0", "--timeout", "60s"],
                              cwd=project.dir, env=cli_env())
        if result.returncode != 1:
            raise BenchError(f"detect: expected exit 1, got {result.returncode}:\n"
                             f"{result.text()}")
        decision = result.first("failed:")
        dies = events.matching(_crash_after(result.start))
        if decision is None or not dies:
            raise BenchError(f"detect: no decision line or no die event:\n{result.text()}")
        die = min(dies, key=lambda e: e.time)
        by_event.append(decision - die.time)
        if die.id in finished.found:
            by_finished.append(decision - finished.found[die.id])
        applied = result.first("applying revision")
        if applied is not None:
            gate_started.append(die.time - applied)
        log(f"detect: run {index + 1}/{runs}: {by_event[-1] * 1000:.0f} ms after the die event")
    space.close_project(project)
    return {
        "runs": runs,
        "crash_after": crash_after,
        "latency_from_finished_at": summarize(by_finished),
        "latency_from_die_event": summarize(by_event),
        "exit_after_apply_line": summarize(gate_started),
    }
