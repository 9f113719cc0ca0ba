"""Helpers shared by the rollout tests (issue 11): what a container's state says."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

from support.compose_project import ComposeProject
from support.helpers import clean_env

FAST = ("--min-healthy", "1s", "--timeout", "60s")
REVISION_LABEL = "org.compose-rollback.revision"
HASH_LABEL = "com.docker.compose.config-hash"


def states(project: ComposeProject, service: str = "web") -> dict[str, dict[str, Any]]:
    """Container id -> what a restart or recreation would change."""
    return {c["Id"]: {"started": c["State"]["StartedAt"], "restarts": c["RestartCount"],
                      "status": c["State"]["Status"],
                      "health": (c["State"].get("Health") or {}).get("Status"),
                      "hash": c["Config"]["Labels"].get(HASH_LABEL),
                      "revision": c["Config"]["Labels"].get(REVISION_LABEL)}
            for c in project.containers(service)}


def history(project: ComposeProject) -> list[dict[str, Any]]:
    data = json.loads(project.run("history", "--json", check=True).stdout)
    return list(data["revisions"] if isinstance(data, dict) else data)


class Signals:
    """``docker events`` of one project's kills and removals, streamed live from before the
    run (a replay with ``--since`` reads the engine's short event buffer, which the shared
    engine's health checks can overrun)."""

    def __init__(self, project: ComposeProject) -> None:
        self.lines: list[str] = []
        self._proc = subprocess.Popen(
            ["docker", "events", "--format", "{{json .}}", "--filter",
             f"label=com.docker.compose.project={project.name}", "--filter", "event=kill",
             "--filter", "event=destroy"], stdout=subprocess.PIPE, text=True, env=clean_env())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        self.lines.extend(self._proc.stdout)

    def close_once_destroyed(self, keep: set[str]) -> dict[str, list[str]]:
        """Container id -> the signals it was sent, once one not in ``keep`` was removed."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                e["Action"] == "destroy" and e["id"] not in keep for e in self._events()):
            time.sleep(0.05)
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._reader.join(timeout=10)
        found: dict[str, list[str]] = {}
        for event in self._events():
            if event["Action"] == "kill":
                found.setdefault(event["id"], []).append(event["Actor"]["Attributes"]["signal"])
        return found

    def _events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines) if line.strip()]
