"""A revision's mounts and refusals, against real containers (the corpus test checks configs).

Short volume and device syntax with a variable inside must run as plain ``compose up`` runs
it (a bind mount, read-only where ``:${MODE:-ro}`` says so), also after a revert; a project
whose included file takes variables from its own env file is refused, with nothing recorded
or started.
"""

from __future__ import annotations

from typing import Any

import pytest
from robust_helpers import TOLERANT_HEALTHCHECK, X_ROLLBACK, cli, up

from support.compose_project import ComposeProject
from support.testimages import AppImages

pytestmark = pytest.mark.docker


def _mounts(project: ComposeProject) -> dict[str, dict[str, Any]]:
    return {m["Destination"]: m for m in project.container("app")["Mounts"]}


def test_short_syntax_with_variables_mounts_as_compose_does_also_after_revert(
        project: ComposeProject, images: AppImages) -> None:
    project.write_file("data/.keep", "")
    project.write_file("conf/.keep", "")
    project.write_file(".env", "CONF=./conf\n")
    text = X_ROLLBACK + f"""services:
  app:
    image: {images.local("healthy")}
    pull_policy: never
{TOLERANT_HEALTHCHECK}
    environment: {{RELEASE: "${{RELEASE:-1}}"}}
    volumes:
      - ${{DATA:-./data}}:/data
      - ${{CONF}}:/conf:${{MODE:-ro}}
    devices:
      - ${{DEV:-/dev/null}}:/dev/x
"""
    project.write_file("compose.yaml", text)
    assert up(project)["revision"] == 1
    mounts = _mounts(project)
    assert (mounts["/data"]["Type"], mounts["/data"]["RW"]) == ("bind", True)
    assert (mounts["/conf"]["Type"], mounts["/conf"]["RW"]) == ("bind", False)
    devices = project.container("app")["HostConfig"]["Devices"]
    assert [(d["PathOnHost"], d["PathInContainer"]) for d in devices] == [("/dev/null", "/dev/x")]

    project.write_file(".env", "CONF=./conf\nMODE=rw\nRELEASE=2\n")
    assert up(project)["revision"] == 2
    assert _mounts(project)["/conf"]["RW"] is True
    project.write_file(".env", "CONF=./conf\n")  # the revert fills in today's .env again
    cli(project, "revert", "--to", "1", "--min-healthy", "1s", "--timeout", "60s")
    mounts = _mounts(project)
    assert (mounts["/conf"]["Type"], mounts["/conf"]["RW"]) == ("bind", False)
    assert mounts["/data"]["Type"] == "bind"


def test_included_env_file_variables_are_refused_not_recorded_wrong(
        project: ComposeProject, images: AppImages) -> None:
    project.write_file("sub/inc.env", "IX=from-include-s3cr3t\n")
    project.write_file("sub/compose.yaml", f"""services:
  api:
    image: {images.local("healthy")}
    pull_policy: never
    environment:
      X: ${{IX:-default}}
""")
    project.write_file("compose.yaml", X_ROLLBACK + f"""include:
  - path: sub/compose.yaml
    env_file: sub/inc.env
services:
  app:
    image: {images.local("healthy")}
    pull_policy: never
{TOLERANT_HEALTHCHECK}
""")
    result = cli(project, "up", "--min-healthy", "1s", "--timeout", "60s", check=2)
    assert "services.api.environment.X" in result.stderr
    assert "from-include-s3cr3t" not in result.stderr + result.stdout
    assert project.containers() == []
    assert not (project.state_dir / "revisions").exists() or not any(
        (project.state_dir / "revisions").iterdir())
