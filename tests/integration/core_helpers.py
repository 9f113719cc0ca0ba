"""Helpers of the end-to-end tests of revisions (``test_core_*.py``): compose files, the CLI
with ``--json``, and what the engine reports.

They only read what the CLI and the engine report; they never work around the product.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from support.compose_project import ComposeProject
from support.helpers import docker, unique_name
from support.testimages import AppImages

#: Gate settings for every test project: fast soak, bounded wait. The soak is short (200ms, not
#: 1s): every gate still waits for each container to be running and healthy, and none of these
#: tests is about how long a release stays healthy (those set their own soak); ~0.8 s less per
#: gated deploy.
X_ROLLBACK = "x-rollback: {timeout: 60s, min_healthy: 200ms}\n"
FAST = ("--min-healthy", "200ms", "--timeout", "60s")


def write_compose(project: ComposeProject, services: str, *, extra: str = "") -> Path:
    """Write ``compose.yaml``: the x-rollback block, then ``services:`` (indented YAML)."""
    body = textwrap.indent(textwrap.dedent(services).strip("\n"), "  ")
    return project.write_file(
        "compose.yaml", X_ROLLBACK + "services:\n" + body + "\n" + textwrap.dedent(extra)
    )


def service(
    image: str,
    *,
    env: dict[str, str] | None = None,
    extra: str = "",
    pull_policy: str | None = "never",
) -> str:
    """One service body (to put under ``<name>:``), as YAML text."""
    lines = [f"image: {image}"]
    if pull_policy:
        lines.append(f"pull_policy: {pull_policy}")
    if env:
        lines.append("environment:")
        lines += [f"  {key}: {json.dumps(value)}" for key, value in env.items()]
    if extra:
        lines += textwrap.dedent(extra).strip("\n").splitlines()
    return "\n".join(lines)


def services(**defs: str) -> str:
    """``name: <body>`` blocks for ``write_compose``."""
    return "\n".join(f"{name}:\n" + textwrap.indent(body, "  ") for name, body in defs.items())


def cli(
    project: ComposeProject,
    *args: str,
    check: bool | int | None = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return project.run(*args, check=check, env=env, timeout=240)


def cli_json(
    project: ComposeProject,
    *args: str,
    check: bool | int | None = True,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run a ``--json`` command; return the process and its parsed stdout."""
    result = cli(project, *args, "--json", check=check, env=env)
    try:
        data = json.loads(result.stdout)
    except ValueError as error:
        raise AssertionError(
            f"not JSON from {args}: {error}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        ) from None
    return result, data


def up(project: ComposeProject, *args: str, check: bool | int | None = 0) -> Any:
    """``up --json`` with fast gates; returns the parsed result (exit code checked)."""
    _, data = cli_json(project, "up", *FAST, *args, check=check)
    return data


def history(project: ComposeProject) -> list[dict[str, Any]]:
    _, data = cli_json(project, "history")
    assert isinstance(data, list), data
    return data


def statuses(project: ComposeProject) -> dict[int, str]:
    return {r["number"]: r["status"] for r in history(project)}


def running_image(project: ComposeProject, service: str) -> str:
    """The image id the one container of ``service`` was created from (``docker inspect``)."""
    return str(project.container(service)["Image"])


def container_env(project: ComposeProject, service: str) -> dict[str, str]:
    env = project.container(service)["Config"]["Env"] or []
    return dict(item.split("=", 1) for item in env)


def is_running(project: ComposeProject, service: str) -> bool:
    return bool(project.container(service)["State"]["Running"])


def image_id(ref: str) -> str | None:
    found = docker("image", "inspect", "--format", "{{.Id}}", ref, check=None)
    return found.stdout.strip() if found.returncode == 0 else None


def retention_tag(repository: str, project: ComposeProject, image: str) -> str:
    """``<repo>:rollback-<project>-<12 hex of the image id>`` (the documented layout)."""
    return f"{repository}:rollback-{project.name}-{image.split(':', 1)[-1][:12]}"


def overlay(project: ComposeProject, number: int) -> Path:
    return project.state_dir / "revisions" / f"{number:04d}.yaml"


def fresh_image(
    images: AppImages, project: ComposeProject, version: str, variant: str = "healthy"
) -> tuple[str, str]:
    """A new, distinct local image ``<project>-img:<version>`` (removed with the project).

    Returns (reference, image id).
    """
    ref = f"{project.name}-img:{version}"
    return ref, images.build_fresh(variant, ref, version=version)


def sentinel(stem: str) -> str:
    return unique_name(f"crt-secret-{stem}", hex_chars=16)


def files_containing(root: Path, needle: str, *, skip: set[Path] = frozenset()) -> list[Path]:
    """Every file under ``root`` (recursively, hidden included) whose bytes hold ``needle``."""
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path not in skip and needle.encode() in path.read_bytes():
            hits.append(path)
    return hits
