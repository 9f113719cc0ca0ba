"""Shared test configuration.

Tests that need Docker use the ``docker_engine`` fixture (or the ``docker`` marker). Without a
reachable engine they skip on a developer's machine but *fail* when ``CI`` is set, so a CI run
can never go green by skipping the tests that prove the product works.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from support.prereq import missing

pytest_plugins = ["support.fixtures", "support.second_engine", "support.docker_cli",
                  "support.swarm_two_nodes"]


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    probe = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"the Docker engine is unreachable: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Require a reachable Docker engine: skip locally, fail under CI."""
    problem = _engine_problem()
    if problem is not None:
        missing(problem)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.fixturenames.insert(0, "docker_engine")  # type: ignore[attr-defined]
