"""Helpers shared by the rollout tests (issue 11): what a container's state says."""

from __future__ import annotations

import json
from typing import Any

from support.compose_project import ComposeProject

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
