"""End to end: ``up`` deploys the project plain ``docker compose`` sees, named by a ``.env``.

The compose files sit in a folder whose name is *not* the project's name; the name comes from
the ``.env`` only (``COMPOSE_PROJECT_NAME``, or an interpolated ``name:`` in a file that only
``COMPOSE_FILE`` in the ``.env`` finds). Our CLI runs there without ``-p`` as a user runs it.
Plain ``docker compose`` must see our containers, and no second project may appear.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from robust_helpers import X_ROLLBACK, compose_text

from support.compose_project import PROJECT_LABEL, REPO_ROOT, ComposeProject
from support.helpers import clean_env, docker, run_command
from support.testimages import AppImages

WORKDIR_LABEL = "com.docker.compose.project.working_dir"


@pytest.fixture
def stack(project: ComposeProject) -> Iterator[Path]:
    """A folder named ``<project>-stack`` inside the project; whatever project a broken
    resolution creates from its name is removed afterwards (by its exact label)."""
    folder = project.dir / f"{project.name}-stack"
    folder.mkdir()
    try:
        yield folder
    finally:
        stray = f"label={PROJECT_LABEL}={folder.name}"
        found = docker("ps", "--all", "--quiet", "--filter", stray, check=None).stdout.split()
        if found:
            docker("rm", "--force", *found, check=None)
        networks = docker("network", "ls", "--quiet", "--filter", stray, check=None)
        if networks.stdout.split():
            docker("network", "rm", *networks.stdout.split(), check=None)


def _ours(cwd: Path, *args: str) -> None:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    run_command([sys.executable, "-m", "compose_rollback", *args], cwd=cwd,
                env=clean_env({"PYTHONPATH": python_path, "PWD": str(cwd)}), check=True,
                timeout=240)


@pytest.mark.parametrize("how", ["COMPOSE_PROJECT_NAME", "COMPOSE_FILE and name:"])
def test_up_deploys_the_project_compose_sees(
    how: str, project: ComposeProject, images: AppImages, stack: Path
) -> None:
    image = images.local("healthy")
    if how == "COMPOSE_PROJECT_NAME":
        (stack / "compose.yaml").write_text(compose_text(image, service="web"))
        (stack / ".env").write_text(f"# ours\nCOMPOSE_PROJECT_NAME={project.name}\n")
    else:
        top = "name: ${APP_NAME:-wrong-name}\n" + X_ROLLBACK
        (stack / "stack.yaml").write_text(compose_text(image, service="web", top=top))
        (stack / ".env").write_text(f"COMPOSE_FILE=stack.yaml\nexport APP_NAME='{project.name}'\n")

    _ours(stack, "up", "--min-healthy", "1s", "--timeout", "60s", "-m", "from .env")

    plain_ps = run_command(["docker", "compose", "ps", "--all", "--format", "json"], cwd=stack,
                           env=clean_env({"PWD": str(stack)}))
    seen = [json.loads(line) for line in plain_ps.stdout.splitlines() if line.strip()]
    assert [(c["Service"], c["State"]) for c in seen] == [("web", "running")], plain_ps.stdout
    assert {c["Project"] for c in seen} == {project.name}

    listed = run_command(["docker", "compose", "ls", "--all", "--format", "json"])
    names = {p["Name"] for p in json.loads(listed.stdout or "[]")}
    assert project.name in names
    assert stack.name not in names and "wrong-name" not in names, "a second project exists"
    here = docker("ps", "--all", "--filter", f"label={WORKDIR_LABEL}={stack}",
                  "--format", '{{.Label "com.docker.compose.project"}}').stdout.split()
    assert here == [project.name], "every container made from this folder is the project's"
    assert (stack / ".rollback" / project.name / "history.json").is_file()
    assert not (stack / ".rollback" / stack.name).exists()
