"""1. Time to recover: ours versus Docker Swarm, on the same engine, images and healthcheck.

A good release (the ``healthy`` test image) runs; a broken one (``unhealthy``: /health answers
500, so the image's HEALTHCHECK (1 s interval, 2 retries) turns it unhealthy; ``crash``: exits
with code 3 0.3 s after start) is deployed over it. Measured from the start of the deploy:

- ours: ``compose-rollback up`` of the broken release with ``--min-healthy`` equal to Swarm's
  ``monitor``. ``exit`` is when the CLI exits 1 (it does only after the restored revision passed
  its gates, soak included); ``healthy_again`` is the daemon time of the first
  ``health_status: healthy`` event of a container running the good image.
- Swarm: ``docker stack deploy`` with ``update_config: {failure_action: rollback, monitor,
  order: stop-first}``. ``done`` is when ``UpdateStatus.State`` is ``rollback_completed`` and a
  task of the good image is running and healthy; ``healthy_again`` as for ours.

The runs of the two alternate (ours, Swarm, ours, Swarm, ...) so background load hits both.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    STEM,
    BenchError,
    EventLog,
    Workspace,
    cli_env,
    compose_text,
    docker,
    healthy_again,
    log,
    ours,
    streamed,
    summarize,
)
from support.helpers import free_port, unique_name
from support.swarm import Stack

CASES = ("unhealthy", "crash")
SWARM_TIMEOUT = 300.0


def _failure_time(events: EventLog, *, after: float, case: str, good_id: str) -> float | None:
    """Daemon time of the broken release's failure: its unhealthy event, or its crash."""
    if case == "unhealthy":
        found = events.matching(lambda e: e.action == "health_status: unhealthy"
                                and e.time >= after)
    else:
        found = events.matching(lambda e: e.action == "die" and e.time >= after
                                and e.attributes.get("exitCode") not in ("0", "143"))
    return min((e.time for e in found), default=None)


# -- ours ------------------------------------------------------------------------------------
class Ours:
    def __init__(self, space: Workspace, *, soak: str) -> None:
        self.space, self.soak = space, soak
        self.images = space.images
        self.good_id = self.images.id("healthy")
        self.project = space.project(self._text("healthy"))
        log(f"recover/ours: first deploy of {self.project.name}")
        first = self.project.run("up", "--min-healthy", "0", env=cli_env(), timeout=300)
        if first.returncode != 0:
            raise BenchError(f"first deploy failed:\n{first.stdout}\n{first.stderr}")

    def _text(self, variant: str) -> str:
        return compose_text({"app": self.images.local(variant)},
                            rollback={"min_healthy": self.soak, "timeout": "60s"},
                            healthcheck=self.space.healthcheck)

    def run(self, case: str) -> dict[str, Any]:
        self.project.write(self._text(case))
        with EventLog(f"com.docker.compose.project={self.project.name}") as events:
            run = streamed([*ours(self.project), "up", "--min-healthy", self.soak,
                            "--timeout", "60s"], cwd=self.project.dir, env=cli_env())
        if run.returncode != 1:
            raise BenchError(f"ours/{case}: expected exit 1 (rolled back), got "
                             f"{run.returncode}:\n{run.text()}")
        healthy = healthy_again(events, after=run.start, image_id=self.good_id)
        failed = _failure_time(events, after=run.start, case=case, good_id=self.good_id)
        decision = run.first("failed:")
        applying = run.first("applying revision")
        restoring = run.first("restoring revision")
        # The restore's own "applying" line (the last one): decision -> it is our own cost on
        # the way back, before the restore's compose up starts.
        reapplying = [t for t, line in run.lines if "applying revision" in line][1:]
        return {
            "exit": run.seconds,
            "applying": None if applying is None else applying - run.start,
            "restoring": None if restoring is None else restoring - run.start,
            "restore_applying": reapplying[-1] - run.start if reapplying else None,
            "decision_to_restore_up": None if decision is None or not reapplying
            else reapplying[-1] - decision,
            "healthy_again": None if healthy is None else healthy - run.start,
            "failure_seen": None if failed is None else failed - run.start,
            "decision": None if decision is None else decision - run.start,
            "detection_latency": None if failed is None or decision is None
            else decision - failed,
        }


# -- swarm -----------------------------------------------------------------------------------
@contextlib.contextmanager
def swarm_mode() -> Iterator[dict[str, Any]]:
    """A single-node swarm on loopback; created (and left at the end) only if there was none."""
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    info: dict[str, Any] = {"state_before": state, "created": False}
    if state == "active":
        log("swarm: the engine is already in a swarm; using it and leaving it as it is")
    elif state == "inactive":
        port = free_port()
        docker("swarm", "init", "--advertise-addr", "127.0.0.1",
               "--listen-addr", f"127.0.0.1:{port}", "--data-path-addr", "127.0.0.1")
        info["created"] = True
        log(f"swarm: initialised on 127.0.0.1:{port} (will leave it at the end)")
    else:
        raise BenchError(f"swarm: node state is {state!r}; not touching it")
    try:
        yield info
    finally:
        if info["created"]:
            left = docker("swarm", "leave", "--force", expect=None)
            log(f"swarm: left (exit {left.returncode})")


STACK = """\
version: "3.8"
services:
  app:
    image: {image}
    deploy:
      replicas: 1
      update_config:
        parallelism: 1
        failure_action: rollback
        monitor: {monitor}
        order: stop-first
"""


@dataclass
class Swarm:
    space: Workspace
    monitor: str
    good: str = "healthy"  # the variant of the good release (``stubborn``: ignores SIGTERM)

    def __post_init__(self) -> None:
        self.images = self.space.images
        self.good_id = self.images.id(self.good)
        self.stack = unique_name(STEM, hex_chars=8)
        self.service = f"{self.stack}_app"
        self.dir: Path = self.space.root / self.stack
        self.dir.mkdir()
        self.space.cleanups.append(self.remove)
        log(f"recover/swarm: deploying stack {self.stack}")
        self._deploy(self.good)
        self._wait_good(time.monotonic() + 120)

    def _deploy(self, variant: str) -> None:
        path = self.dir / f"{variant}.yml"
        path.write_text(STACK.format(image=self.images.local(variant), monitor=self.monitor))
        docker("stack", "deploy", "--resolve-image", "never", "--compose-file", str(path),
               self.stack)

    def _update_status(self) -> dict[str, Any]:
        out = docker("service", "inspect", "--format", "{{json .UpdateStatus}}", self.service)
        data = json.loads(out.stdout.strip() or "null")
        return data if isinstance(data, dict) else {}

    def _good_task_healthy(self) -> bool:
        ids = docker("ps", "--quiet", "--no-trunc", "--filter",
                     f"label=com.docker.swarm.service.name={self.service}",
                     "--filter", "health=healthy").stdout.split()
        if not ids:
            return False
        out = docker("container", "inspect", "--format", "{{.Image}} {{.State.Status}}", *ids,
                     expect=None)
        return any(line.split() == [self.good_id, "running"]
                   for line in out.stdout.splitlines())

    def _wait_good(self, deadline: float) -> None:
        while not self._good_task_healthy():
            if time.monotonic() > deadline:
                raise BenchError(f"swarm: no healthy task of {self.service} in time")
            time.sleep(0.2)

    def run(self, case: str) -> dict[str, Any]:
        before = self._update_status().get("StartedAt")
        with EventLog(f"com.docker.swarm.service.name={self.service}") as events:
            start = time.time()
            self._deploy(case)
            deadline = time.monotonic() + SWARM_TIMEOUT
            state = ""
            while time.monotonic() < deadline:
                status = self._update_status()
                state = str(status.get("State", ""))
                if status.get("StartedAt") != before and state == "rollback_completed":
                    break
                if status.get("StartedAt") != before and state in (
                        "paused", "rollback_paused", "completed"):
                    raise BenchError(f"swarm/{case}: update ended {state}: {status}")
                time.sleep(0.2)
            else:
                raise BenchError(f"swarm/{case}: no rollback within {SWARM_TIMEOUT:g}s "
                                 f"(last state {state!r})")
            rolled_back = time.time()
            self._wait_good(time.monotonic() + 120)
            done = time.time()
        healthy = healthy_again(events, after=start, image_id=self.good_id)
        failed = _failure_time(events, after=start, case=case, good_id=self.good_id)
        return {
            "done": done - start,
            "rollback_completed": rolled_back - start,
            "healthy_again": None if healthy is None else healthy - start,
            "failure_seen": None if failed is None else failed - start,
        }

    def remove(self) -> None:
        try:
            Stack(self.stack).remove(timeout=60)
        except TimeoutError as left:
            log(f"swarm: {left}")


# -- the section -----------------------------------------------------------------------------
def run(space: Workspace, *, reps: int, soak_seconds: int, swarm: bool) -> dict[str, Any]:
    soak = f"{soak_seconds}s"
    samples: dict[str, dict[str, list[float]]] = {
        f"{who}.{case}": {} for who in ("ours", "swarm") for case in CASES}
    result: dict[str, Any] = {"min_healthy": soak, "monitor": soak, "reps": reps,
                              "cases": list(CASES)}
    mine = Ours(space, soak=soak)
    with contextlib.ExitStack() as stack:
        peer: Swarm | None = None
        if swarm:
            result["swarm"] = stack.enter_context(swarm_mode())
            peer = Swarm(space, monitor=soak)
        for rep in range(reps):
            for case in CASES:
                log(f"recover: rep {rep + 1}/{reps} {case}: ours")
                _add(samples[f"ours.{case}"], mine.run(case))
                if peer is not None:
                    log(f"recover: rep {rep + 1}/{reps} {case}: swarm")
                    _add(samples[f"swarm.{case}"], peer.run(case))
        if peer is not None:
            space.cleanups.remove(peer.remove)
            peer.remove()
    space.close_project(mine.project)
    result["figures"] = {key: {name: summarize(values) for name, values in figures.items()}
                         for key, figures in samples.items() if figures}
    return result


def _add(into: dict[str, list[float]], figures: dict[str, Any]) -> None:
    for name, value in figures.items():
        if value is not None:
            into.setdefault(name, []).append(float(value))
