"""A stand-in for ``compose_rollback.engine.Engine``: the one seam the core talks through.

It keeps a tiny model of images and containers, so the deploy transaction can be exercised in
milliseconds. What a container does after ``up`` is decided by ``behaviour[service]``:
``healthy`` | ``crash`` | ``unhealthy``. The integration tests prove the same against Docker.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from compose_rollback.dockerdata import ContainerState, Event, ImageInfo
from compose_rollback.overlay import parse
from compose_rollback.project import Project


class FakeStream:
    def close(self) -> None:
        return None

    def __enter__(self) -> FakeStream:
        return self

    def __exit__(self, *_: object) -> None:
        return None


class FakeEngine:
    def __init__(self, *, model: dict[str, Any], images: Mapping[str, ImageInfo]) -> None:
        self.model = model  # what `compose config` returns (interpolated == snapshot here)
        self.images = dict(images)
        self.behaviour: dict[str, str] = {}
        self.applied: list[str] = []  # overlay file names, in order
        self.tags: dict[str, str] = {}
        self.running: dict[str, str] = {}  # service -> image id

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

    def up(self, project: Project, *, overlay: Path,
           started: Callable[[int], None] | None = None) -> None:
        self.applied.append(overlay.name)
        services = parse(overlay.read_text())["services"]
        self.running = {}
        for name, definition in services.items():
            if "image" not in definition:
                continue  # a provider service: no container of ours
            image = definition["image"]
            info = self.inspect_images([image]).get(image)
            self.running[name] = info.id if info else image

    def containers(self, project_name: str, *, known: Sequence[str] = ()
                   ) -> list[ContainerState]:
        states = []
        for service, image_id in self.running.items():
            mode = self.behaviour.get(service, "healthy")
            status = "exited" if mode == "crash" else "running"
            health = None if mode == "crash" else ("unhealthy" if mode == "unhealthy"
                                                    else "healthy")
            states.append(ContainerState(
                id=f"id-{service}", name=f"{project_name}-{service}-1", service=service,
                status=status, exit_code=3 if mode == "crash" else 0, health=health,
                restart_count=0, image_id=image_id, oom_killed=False, oneoff=False))
        return states

    def logs(self, container_id: str, *, tail: int = 20) -> str:
        return "last words"

    def events(self, project_name: str, *, on_event: Callable[[Event], None]) -> FakeStream:
        return FakeStream()

    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]:
        return 0, ""
