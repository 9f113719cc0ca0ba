"""Plain data the engine returns, image-reference parsing and the Compose version policy.

No docker call here: this is what the rest of the code (and the unit tests' fake engine) may
import without loading python-on-whales.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compose_rollback.errors import Unreachable


@dataclass(frozen=True)
class ImageInfo:
    """An image as the engine knows it: its id, tags and registry digests."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]


@dataclass(frozen=True)
class ContainerState:
    """What the container gate needs to know about one container."""

    id: str
    name: str
    service: str
    status: str  # created, running, restarting, exited, dead, paused
    exit_code: int
    health: str | None  # None when the container has no healthcheck
    restart_count: int
    image_id: str
    oom_killed: bool
    oneoff: bool
    health_output: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    failure: str = ""  # an orchestrator's own verdict (a Swarm task that ended): fails the gate


@dataclass(frozen=True)
class Listed:
    """A container as one line of ``docker ps --format LISTING`` shows it: what ``status``
    needs, read without an ``inspect`` call when the line says it all (``conclusive``)."""

    id: str
    name: str
    service: str
    oneoff: bool
    status: str  # created, running, restarting, exited, dead, paused
    health: str | None
    #: Compose's ``com.docker.compose.image`` label: the id of the image Compose created the
    #: container from (it compares the label to tell an outdated container); "" when absent.
    image_id: str
    #: Running, one name, the image label an image id, and a health ``docker ps`` spells out:
    #: the fields above are what ``inspect`` would say. Otherwise (an exited container keeps
    #: its last health, which ``ps`` does not show) only ``inspect`` can tell.
    conclusive: bool


#: ``docker ps --format``: one JSON object per container (the daemon's ``Status`` text holds
#: the health of a running container: ``Up 5 minutes (healthy)``, ``(health: starting)``).
LISTING = ('{"id":{{json .ID}},"names":{{json .Names}},"state":{{json .State}},'
           '"status":{{json .Status}},"service":{{json (.Label "com.docker.compose.service")}},'
           '"oneoff":{{json (.Label "com.docker.compose.oneoff")}},'
           '"image":{{json (.Label "com.docker.compose.image")}}}')
_ID_LENGTH = len("sha256:") + 64  # an image id, in full
_HEALTH_SHOWN = {"(healthy)": "healthy", "(unhealthy)": "unhealthy",
                 "(health: starting)": "starting"}


def listed(line: str) -> Listed:
    """One line of ``docker ps --format LISTING`` (``ValueError`` when it is not one)."""
    d = json.loads(line)
    if not isinstance(d, dict):
        raise ValueError(f"not a listing line: {line[:80]!r}")
    names, state, shown = str(d["names"]), str(d["state"]), str(d["status"])
    image = str(d["image"])
    health: str | None = None
    readable = shown.startswith("Up ")
    if readable and shown.endswith(")"):
        health = _HEALTH_SHOWN.get(shown[shown.rfind(" (") + 1:])
        readable = health is not None
    return Listed(id=str(d["id"]), name=names, service=str(d["service"]),
                  oneoff=d["oneoff"] == "True", status=state, health=health, image_id=image,
                  conclusive=(state == "running" and readable and "," not in names
                              and image.startswith("sha256:") and len(image) == _ID_LENGTH))


@dataclass(frozen=True)
class Event:
    """One container event from the Docker event stream."""

    action: str
    container_id: str
    service: str
    time_nano: int
    name: str = ""
    exit_code: int | None = None
    oneoff: bool = False
    #: The container's attributes as the event carries them (its labels among them).
    attributes: Mapping[str, str] = field(default_factory=dict)


MIN_COMPOSE = "2.24.0"
def check_compose(found: str) -> None:
    """Compose 2.24 or newer (5.x included); older or unreadable is ``Unreachable`` (exit 5)."""
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(found.split("+")[0].split("-")[0])
    except InvalidVersion:
        raise Unreachable(f"cannot read the Compose version {found!r}",
                          hint=f"install Compose v{MIN_COMPOSE} or newer") from None
    if version < Version(MIN_COMPOSE):
        raise Unreachable(f"Compose {found} is too old: compose-rollback needs {MIN_COMPOSE} "
                          "or newer", hint="upgrade Compose (install.sh --with-docker)")


def match_refs(refs: Sequence[str], infos: Sequence[ImageInfo]) -> dict[str, ImageInfo]:
    """Map each asked reference to the inspected image it names."""
    result: dict[str, ImageInfo] = {}
    for ref in refs:
        for info in infos:
            if _names(ref, info):
                result[ref] = info
                break
    return result


def _names(ref: str, info: ImageInfo) -> bool:
    if ref.startswith("sha256:"):
        return info.id == ref
    if "@" in ref:
        name, digest = ref.split("@", 1)
        repo = _normal(name).rsplit(":", 1)[0]
        return f"{repo}@{digest}" in {_normal(d) for d in info.repo_digests}
    return _normal(ref) in {_normal(t) for t in info.repo_tags}


def repository(ref: str) -> str:
    """The repository part of a reference (no tag, no digest), in docker's short form."""
    name = _normal(ref.split("@", 1)[0])
    return name.rsplit(":", 1)[0]


def _normal(ref: str) -> str:
    """Docker's short form: drop ``docker.io/`` and ``library/``, add ``:latest`` if bare."""
    name = ref
    for prefix in ("docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith("library/"):
        name = name[len("library/"):]
    last = name.rsplit("/", 1)[-1]
    if "@" not in name and ":" not in last:
        name += ":latest"
    return name


def container_state(d: Mapping[str, Any]) -> ContainerState:
    state = d.get("State") or {}
    labels = (d.get("Config") or {}).get("Labels") or {}
    health = state.get("Health")
    output = ""
    if health and health.get("Log"):
        output = str(health["Log"][-1].get("Output", "")).strip()
    return ContainerState(
        id=str(d["Id"]), name=str(d.get("Name", "")).lstrip("/"),
        service=str(labels.get("com.docker.compose.service", "")),
        status=str(state.get("Status", "")), exit_code=int(state.get("ExitCode") or 0),
        health=str(health["Status"]) if health else None,
        restart_count=int(d.get("RestartCount") or 0), image_id=str(d.get("Image", "")),
        oom_killed=bool(state.get("OOMKilled")),
        oneoff=labels.get("com.docker.compose.oneoff", "False") == "True",
        health_output=output, labels=dict(labels),
    )
