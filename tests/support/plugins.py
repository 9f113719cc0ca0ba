"""Where docker finds its Compose plugin: the real one, never a compose-rollback shim."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .prereq import need

SHIM_MARKER = b"compose-rollback-shim"
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def is_shim(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(1024)
    return head.startswith(b"#!") and SHIM_MARKER in head


def plugin_dirs() -> list[str]:
    """Docker's search order: ``cliPluginsExtraDirs``, the config dir, the system dirs."""
    config_dir = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    dirs: list[str] = []
    config_json = config_dir / "config.json"
    if config_json.is_file():
        extra = json.loads(config_json.read_text() or "{}").get("cliPluginsExtraDirs") or []
        dirs += [d for d in extra if isinstance(d, str)]
    return [*dirs, str(config_dir / "cli-plugins"), *SYSTEM_PLUGIN_DIRS]


def locate_real_compose() -> Path | None:
    """The Compose plugin docker would run for this user, skipping any shim of ours."""
    for directory in plugin_dirs():
        candidate = Path(directory) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK) and not is_shim(candidate):
            return candidate.resolve()
    return None


def find_real_compose() -> Path:
    """``locate_real_compose()``, or skip (fail under ``CI``) when there is none."""
    return need(locate_real_compose(), f"no Docker Compose plugin found in {plugin_dirs()}")
