"""A stand-in for ``compose_rollback.engine.Engine``: the one seam the core talks through.

It keeps a tiny model of images and containers, so the deploy transaction can be exercised in
milliseconds. What a container does after ``up`` is decided by ``behaviour[service]``:
``healthy`` | ``crash`` | ``unhealthy``. The integration tests prove the same against Docker.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose_rollback.dockerdata import ContainerState, Event, ImageInfo, Listed
from compose_rollback.overlay import parse
from compose_rollback.project import Project
from compose_rollback.rollout.labels import CONFIG_HASH


class FakeStream:
    def close(self) -> None:
        return None

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *_: object) -> None:
        return None


@dataclass
class Box:
    """One fake container."""

    id: str
    service: str
    image_id: str
    config_hash: str
    number: int
    labels: dict[str, str] = field(default_factory=dict)
    mode: str | None = None  # this container's own behaviour; wins over the others


class FakeEngine:
    def __init__(self, *, model: dict[str, Any], images: Mapping[str, ImageInfo]) -> None:
        self.model = model  # what `compose config` returns (interpolated == snapshot here)
        self.images = dict(images)
        self.behaviour: dict[str, str] = {}  # by service
        self.image_behaviour: dict[str, str] = {}  # by image id; wins over ``behaviour``
        #: By image id: behaviours of the next containers created from it, in turn ("fail
        #: once, then succeed": ``["crash"]``); the ones after follow the two maps above.
        self.next_behaviour: dict[str, list[str]] = {}
        self.applied: list[str] = []  # overlay file names, in order
        self.calls: list[tuple[Any, ...]] = []  # up / kill / stop, in order
        self.tags: dict[str, str] = {}
        self.boxes: dict[str, Box] = {}
        self.inspected: list[tuple[str, ...]] = []  # ids of each inspect_containers call
        self._listed_as = ""  # the project name of the last listing (containers' names)
        self._running: dict[str, str] = {}
        self._ids = itertools.count(1)

    @property
    def running(self) -> dict[str, str]:
        """Service -> image id of its newest container (the latest ``up`` of it)."""
        return self._running

    @running.setter
    def running(self, services: dict[str, str]) -> None:
        """A test sets what runs: one container per service, as if started by hand."""
        self.boxes.clear()
        self._running = dict(services)
        for service, image_id in services.items():
            self._create(service, image_id, "", 1, {})

    def warm(self) -> None:
        pass

    def config(self, project: Project, *, interpolate: bool) -> dict[str, Any]:
        return copy.deepcopy(self.model)

    def build(self, project: Project, services: Sequence[str]) -> None:
        return None

    def pull(self, project: Project, services: Sequence[str], *, policy: str) -> None:
        return None

    def inspect_images(self, refs: Sequence[str]) -> dict[str, ImageInfo]:
        found = {}
        for ref in refs:
            for name, info in self.images.items():
                if ref in (name, info.id) or ref.split("@")[-1] in {
                        d.split("@")[-1] for d in info.repo_digests}:
                    found[ref] = info
        return found

    def tag(self, source: str, target: str) -> None:
        self.tags[target] = source
        info = self.inspect_images([source]).get(source)
        if info is not None:  # like Docker: the tag keeps the image (and its digests) alive
            self.images[target] = info

    def untag(self, refs: Sequence[str]) -> None:
        for ref in refs:
            self.tags.pop(ref, None)
            self.images.pop(ref, None)

    def config_hashes(self, project: Project, *, overlay: Path) -> dict[str, str]:
        services = parse(overlay.read_text())["services"]
        return {name: hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
                for name, d in services.items()}

    def up(self, project: Project, *, overlay: Path,
           started: Callable[[int], None] | None = None, services: Sequence[str] = (),
           scale: Mapping[str, int] | None = None, recreate: bool = True) -> None:
        """Compose's convergence, in small: recreate what changed, scale to the count."""
        self.applied.append(overlay.name)
        self.calls.append(("up", overlay.name, tuple(services), dict(scale or {}), recreate))
        definitions = parse(overlay.read_text())["services"]
        hashes = self.config_hashes(project, overlay=overlay)
        if recreate and not services:
            for box in [b for b in self.boxes.values() if b.service not in definitions]:
                del self.boxes[box.id]
        for name in services or sorted(definitions):
            definition = definitions[name]
            if "image" not in definition:
                continue  # a provider service: no container of ours
            image = definition["image"]
            info = self.inspect_images([image]).get(image)
            image_id = info.id if info else image
            want = (scale or {}).get(name, (definition.get("deploy") or {}).get("replicas", 1))
            mine = sorted((b for b in self.boxes.values() if b.service == name),
                          key=lambda b: b.number)
            labels = {str(k): str(v) for k, v in (definition.get("labels") or {}).items()}
            for box in mine[want:]:
                del self.boxes[box.id]
            for box in mine[:want]:
                if recreate and box.config_hash != hashes[name]:
                    del self.boxes[box.id]
                    self._create(name, image_id, hashes[name], box.number, labels)
            numbers = {b.number for b in self.boxes.values() if b.service == name}
            for _ in range(want - len(numbers)):
                number = next(n for n in itertools.count(1) if n not in numbers)
                numbers.add(number)
                self._create(name, image_id, hashes[name], number, labels)
            self._running[name] = image_id

    def _create(self, service: str, image_id: str, config_hash: str, number: int,
                labels: dict[str, str]) -> None:
        queued = self.next_behaviour.get(image_id)
        box = Box(f"id-{service}-{next(self._ids)}", service, image_id, config_hash, number,
                  {**labels, CONFIG_HASH: config_hash}, queued.pop(0) if queued else None)
        self.boxes[box.id] = box

    def remove_containers(self, ids: Sequence[str]) -> None:
        self.calls.append(("kill", tuple(ids)))
        for container_id in ids:
            self.boxes.pop(container_id, None)

    def stop_containers(self, ids: Sequence[str]) -> None:
        self.calls.append(("stop", tuple(ids)))
        for container_id in ids:
            self.boxes.pop(container_id, None)

    def containers(self, project_name: str, *, known: Sequence[str] = (),
                   limit: float = 30.0) -> list[ContainerState]:
        states = []
        for box in sorted(self.boxes.values(), key=lambda b: (b.service, b.number)):
            mode = box.mode or self.image_behaviour.get(box.image_id) or self.behaviour.get(
                box.service, "healthy")
            status = "exited" if mode == "crash" else "running"
            health = None if mode == "crash" else ("unhealthy" if mode == "unhealthy"
                                                    else "healthy")
            states.append(ContainerState(
                id=box.id, name=f"{project_name}-{box.service}-{box.number}",
                service=box.service, status=status, exit_code=3 if mode == "crash" else 0,
                health=health, restart_count=0, image_id=box.image_id, oom_killed=False,
                oneoff=False, labels=dict(box.labels)))
        return states

    def listing(self, project_name: str) -> list[Listed]:
        """What ``docker ps`` shows of ``containers``: a running container's line says it all
        (its image label is its image id), a stopped one's does not (no health)."""
        self._listed_as = project_name
        return [Listed(id=c.id, name=c.name, service=c.service, oneoff=c.oneoff,
                       status=c.status, health=c.health if c.status == "running" else None,
                       image_id=c.image_id, conclusive=c.status == "running")
                for c in self.containers(project_name)]

    def inspect_containers(self, ids: Sequence[str]) -> list[ContainerState]:
        self.inspected.append(tuple(ids))
        return [c for c in self.containers(self._listed_as) if c.id in ids]

    def logs(self, container_id: str, *, tail: int = 20) -> str:
        return "last words"

    def events(self, project_name: str, *, on_event: Callable[[Event], None]) -> FakeStream:
        return FakeStream()

    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]:
        self.calls.append(("exec", container_id, tuple(command)))
        return 0, ""
