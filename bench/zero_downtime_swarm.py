"""The Swarm peer of ``zerodowntime``: a stack with ``order: start-first`` behind the same proxy.

Two replicas of the same test images and healthcheck, ``update_config: {parallelism: 1, order:
start-first, failure_action: rollback, monitor: 5s}`` and ``rollback_config: {order:
start-first}``, on an attachable overlay network the proxy's container joins; HAProxy resolves
``tasks.<service>`` (every task's own address, not the routing mesh's virtual IP) and checks
each task itself, as it does the compose containers. A deploy is ``docker stack deploy`` plus
the wait until ``UpdateStatus`` says ``completed`` (exit 0) or ``rollback_completed`` (exit 1).
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from bench.common import STEM, BenchError, Workspace, docker, log
from support.compose_project import ComposeProject
from support.haproxy import LISTEN_PORT, Proxies, Proxy
from support.helpers import unique_name
from support.swarm import Stack

STACK = """\
version: "3.8"
services:
  web:
    image: {image}
    environment: {{RELEASE: {release}}}
    healthcheck: {{interval: 1s, timeout: 10s, retries: 2}}
    deploy:
      replicas: 2
      update_config: {{parallelism: 1, order: start-first, failure_action: rollback,
                      monitor: 5s}}
      rollback_config: {{parallelism: 1, order: start-first}}
networks:
  default: {{driver: overlay, attachable: true}}
"""
ENDED = ("completed", "rollback_completed", "paused", "rollback_paused")


class SwarmRig:
    """The stack, and its proxy; ``run(case)`` like ``zero_downtime.Rig``."""

    mode = "swarm"

    def __init__(self, space: Workspace, proxies: Proxies, *,
                 cleanups: contextlib.ExitStack) -> None:
        self.images = space.images
        self.stack = unique_name(STEM, hex_chars=8)
        self.service = f"{self.stack}_web"
        self.network = f"{self.stack}_default"
        self.dir = space.root / self.stack
        self.dir.mkdir()
        self.count = 0
        self.proxy: Proxy | None = None
        self.removed = False
        cleanups.callback(self.remove)
        log(f"zerodowntime/swarm: deploying stack {self.stack}")
        self._write("healthy", "r0")
        self._wait(lambda: len(self.addresses()) == 2 and self._healthy() == 2, 120)
        # The proxy's own compose project is named after the stack (``<stack>-lb``).
        named = ComposeProject(space.root / "swarm-lb", name=self.stack)
        self.proxy = proxies.start(named, service=f"tasks.{self.service}",
                                   network=self.network)
        self.proxy.wait_up(self.addresses(), timeout=60)

    def _write(self, variant: str, release: str) -> None:
        path = self.dir / f"{release}.yml"
        path.write_text(STACK.format(image=self.images.local(variant), release=release))
        docker("stack", "deploy", "--resolve-image", "never", "--compose-file", str(path),
               self.stack)

    @staticmethod
    def _wait(predicate: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                raise BenchError("zerodowntime/swarm: the stack did not get there in time")
            time.sleep(0.2)

    def _running(self) -> list[str]:
        return docker("ps", "--quiet", "--no-trunc", "--filter",
                      f"label=com.docker.swarm.service.name={self.service}").stdout.split()

    def _healthy(self) -> int:
        return len(docker("ps", "--quiet", "--filter", "health=healthy", "--filter",
                          f"label=com.docker.swarm.service.name={self.service}").stdout.split())

    def addresses(self) -> set[str]:
        """``ip:port`` of the running tasks on the stack's network, as HAProxy names them."""
        ids = self._running()
        if not ids:
            return set()
        out = docker("container", "inspect", "--format", "{{json .NetworkSettings.Networks}}",
                     *ids, expect=None)
        found = set()
        for line in out.stdout.splitlines():
            settings = (json.loads(line or "{}") or {}).get(self.network) or {}
            if settings.get("IPAddress"):
                found.add(f"{settings['IPAddress']}:{LISTEN_PORT}")
        return found

    def _status(self) -> dict[str, Any]:
        out = docker("service", "inspect", "--format", "{{json .UpdateStatus}}", self.service)
        data = json.loads(out.stdout.strip() or "null")
        return data if isinstance(data, dict) else {}

    def deploy(self, case: str) -> tuple[int, float]:
        self.count += 1
        before = self._status().get("StartedAt")
        start = time.monotonic()
        if case == "good":
            self._write("healthy", f"r{self.count}")
        else:
            self._write("unhealthy", "broken")
        state = ""
        while time.monotonic() - start < 300:
            status = self._status()
            state = str(status.get("State", ""))
            if status.get("StartedAt") != before and state in ENDED:
                break
            time.sleep(0.2)
        else:
            raise BenchError(f"zerodowntime/swarm: update not over in 300 s ({state!r})")
        if state not in ("completed", "rollback_completed"):
            raise BenchError(f"zerodowntime/swarm: update ended {state}")
        return (0 if state == "completed" else 1), time.monotonic() - start

    def run(self, case: str) -> dict[str, Any]:
        from bench.zero_downtime import under_load

        assert self.proxy is not None
        return under_load(self.proxy, deploy=lambda: self.deploy(case),
                          addresses=self.addresses)

    def remove(self) -> None:
        """The proxy first (its container holds the overlay network), then the stack."""
        if self.removed:
            return
        self.removed = True
        if self.proxy is not None:
            self.proxy.cleanup()
        try:
            Stack(self.stack).remove(timeout=60)
        except TimeoutError as left:
            log(f"zerodowntime/swarm: {left}")
