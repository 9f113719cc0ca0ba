"""The real docker CLI with compose-rollback installed as its plugin, in a config dir of its own.

``docker_cli`` (module) makes a throw-away ``DOCKER_CONFIG``: ``cli-plugins/docker-compose``
is the shim rendered as ``install.sh`` renders it (its ``@REAL_COMPOSE@`` the real Compose
plugin of this machine, its ``@ENTRY@`` a script that runs this working tree's package), so
``docker [globals] compose [globals] rollback …`` takes the user's path: the docker CLI, the
shim, our argv splitter. Docker contexts made with ``.env`` live in that config dir only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from .compose_project import REPO_ROOT
from .plugins import find_real_compose

SHIM_TEMPLATE = REPO_ROOT / "compose_rollback" / "shim" / "docker-compose"


@dataclass(frozen=True)
class DockerCli:
    env: dict[str, str]

    def run(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None = None,
            timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env={**self.env, **(env or {})}, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)


def _quoted(value: str) -> str:
    return re.sub(r'([\\"$`])', r"\\\1", value)


@pytest.fixture(scope="module")
def docker_cli(tmp_path_factory: pytest.TempPathFactory) -> DockerCli:
    real = find_real_compose()
    root = tmp_path_factory.mktemp("docker-cli")
    entry = root / "entry"
    entry.write_text(f'#!/bin/sh\nPYTHONPATH="{_quoted(str(REPO_ROOT))}" '
                     f'exec "{_quoted(sys.executable)}" -m compose_rollback "$@"\n')
    entry.chmod(0o755)
    text = SHIM_TEMPLATE.read_text().replace("@ENTRY@", _quoted(str(entry)))
    text = text.replace("@REAL_COMPOSE@", _quoted(str(real)))
    assert not re.search(r"@[A-Z_]+@", text), "unfilled placeholder in the shim template"
    plugin = root / "config" / "cli-plugins" / "docker-compose"
    plugin.parent.mkdir(parents=True)
    plugin.write_text(text)
    plugin.chmod(0o755)
    dropped = ("DOCKER_HOST", "DOCKER_CONTEXT", "COMPOSE_FILE", "COMPOSE_PROJECT_NAME",
               "COMPOSE_PROFILES", "COMPOSE_ENV_FILES")
    env = {k: v for k, v in os.environ.items()
           if k not in dropped and not k.startswith("DOCKER_CLI_PLUGIN_")}
    env["DOCKER_CONFIG"] = str(root / "config")
    return DockerCli(env=env)
