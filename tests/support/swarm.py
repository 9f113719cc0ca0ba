"""A single-node Docker Swarm on loopback for the Swarm tests, and the stacks they deploy.

``Swarm.ensure()`` initialises one (``docker swarm init --advertise-addr 127.0.0.1``) only if
the engine's swarm is inactive, and ``restore()`` leaves it again only if it was created here:
the engine is left as it was found. Another state (a worker, a locked or pending swarm) is not
ours to change: the tests needing it fail with the state named.

The engine has one swarm: in one run the tests using it share one xdist worker (group
``swarm``, tests/conftest.py), and ``exclusive()`` keeps two runs on this host (or a bench)
from holding it at once, so one cannot leave the swarm under the other's stack.

``Stack`` is one test's stack (named like its compose project): read its services and tasks;
``remove()`` takes it away and waits until its containers and networks are gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helpers import docker, wait_for

STACK_LABEL = "com.docker.stack.namespace"
#: Held by the test process that uses the engine's swarm, for as long as it does.
SWARM_LOCK = Path(tempfile.gettempdir()) / "crt-swarm.lock"


@contextlib.contextmanager
def exclusive(*, timeout: float = 1800.0) -> Iterator[None]:
    """Hold the host-wide swarm lock; fail naming it after ``timeout`` seconds of waiting."""
    with open(SWARM_LOCK, "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AssertionError(f"another test run held {SWARM_LOCK} (the engine's "
                                         f"swarm) for {timeout:g} s") from None
                time.sleep(1.0)
        yield


def swarm_state() -> str:
    found = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
    return found.stdout.strip()


@dataclass
class Swarm:
    created: bool

    @classmethod
    def ensure(cls) -> Swarm:
        state = swarm_state()
        if state.startswith("inactive"):
            docker("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=60)
            return cls(created=True)
        if state != "active true":
            raise AssertionError(f"the engine's swarm is {state!r}: the Swarm tests need an "
                                 "inactive one (to create) or an active manager")
        return cls(created=False)

    def restore(self) -> None:
        if self.created:
            docker("swarm", "leave", "--force", timeout=60)


@dataclass
class Stack:
    name: str

    def services(self) -> dict[str, dict[str, Any]]:
        """``docker service inspect`` of each service, by compose service name."""
        ids = docker("service", "ls", "--quiet", "--filter", f"label={STACK_LABEL}={self.name}")
        if not ids.stdout.split():
            return {}
        found = json.loads(docker("service", "inspect", *ids.stdout.split()).stdout)
        return {s["Spec"]["Name"].removeprefix(f"{self.name}_"): s for s in found}

    def image(self, service: str) -> str:
        """The image the service's spec names."""
        spec = self.services()[service]["Spec"]
        return str(spec["TaskTemplate"]["ContainerSpec"]["Image"])

    def running(self, service: str) -> list[str]:
        """The image of each task of the service that runs now."""
        listing = docker("service", "ps", f"{self.name}_{service}", "--no-trunc", "--filter",
                         "desired-state=running", "--format", "{{json .}}")
        rows = [json.loads(line) for line in listing.stdout.splitlines() if line.strip()]
        return sorted(r["Image"] for r in rows if r["CurrentState"].startswith("Running"))

    def remove(self, *, timeout: float = 120.0) -> None:
        """Remove the stack and wait until its containers and networks are gone.

        ``docker stack rm`` removes the services, then the networks, in one pass; a network whose
        tasks are still shutting down is refused ("in use") and left behind, and nothing retries
        it. So while anything is left, the removal is asked again every few seconds, and once no
        container of the stack is left, a network still there is removed by name. A timeout names
        what was left.
        """
        label = f"label={STACK_LABEL}={self.name}"
        docker("stack", "rm", self.name, check=None)
        asked = time.monotonic()

        def left() -> tuple[list[str], list[str]]:
            containers = docker("ps", "--all", "--filter", label,
                                "--format", "{{.Names}} {{.Status}}").stdout.splitlines()
            nets = docker("network", "ls", "--filter", label,
                          "--format", "{{.Name}}").stdout.split()
            return [c for c in containers if c.strip()], nets

        def gone() -> bool:
            nonlocal asked
            containers, nets = left()
            if not containers and not nets:
                return True
            if time.monotonic() - asked >= 5.0:
                docker("stack", "rm", self.name, check=None)
                if not containers and nets:
                    docker("network", "rm", *nets, check=None)
                asked = time.monotonic()
            return False

        try:
            wait_for(gone, timeout=timeout, interval=0.2, what=f"stack {self.name} to be removed")
        except TimeoutError as timed_out:
            containers, nets = left()
            raise TimeoutError(f"{timed_out}: containers left {containers}, "
                               f"networks left {nets}") from None
