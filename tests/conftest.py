"""Shared test configuration.

Tests that need Docker use the ``docker_engine`` fixture (or the ``docker`` marker). Without a
reachable engine they skip on a developer's machine but *fail* when ``CI`` is set, so a CI run
can never go green by skipping the tests that prove the product works.

Parallel runs (pytest-xdist, ``--dist loadgroup``; ``scripts/test`` runs two phases):

- a test that uses the ``swarm`` fixture (directly or through another fixture, such as
  ``stack``) or carries ``@pytest.mark.swarm`` joins the xdist group ``swarm``: the engine has
  one swarm, so those tests all run on one worker, one at a time;
- a test that uses ``second_engine`` (and not the swarm) joins the group ``second-engine``:
  one extra dockerd per run instead of one per worker;
- ``@pytest.mark.serial``: timing-sensitive (kill points, latency, failed requests under load);
  ``--phase parallel`` leaves those out, ``--phase serial`` runs only those, alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Cache the test modules as pytest rewrites them (their asserts), like any module: where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines) pytest honours it and
# rewrites and compiles every test and support module again in each process, ~1.4 s of CPU
# in each xdist worker and in each phase. Only this process: the CLI runs the tests start keep
# the environment as it is (the shared install is checked for files written into it).
sys.dont_write_bytecode = False

from support.prereq import missing  # noqa: E402  (after the line above: cached too)

pytest_plugins = ["support.fixtures", "support.second_engine", "support.docker_cli",
                  "support.swarm_two_nodes", "support.installed"]

#: xdist group of the tests that use a fixture (or its marker), in this order of precedence.
GROUPS = (("swarm", "swarm"), ("second_engine", "second-engine"))
#: ``scripts/test`` reads the size of each phase here (the environment names the file).
COUNTS_ENV = "CRT_TEST_PHASE_COUNTS"


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=("all", "parallel", "serial"),
        default="all",
        help="parallel: leave out the tests marked serial; serial: run only those (default: all)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "serial: timing-sensitive; runs alone, after the parallel phase (scripts/test)",
        "swarm: uses the engine's swarm; all such tests run on one xdist worker",
    ):
        config.addinivalue_line("markers", line)
    config.pluginmanager.register(_Phases(), "crt-phases")


def _group(item: pytest.Item) -> str | None:
    names = getattr(item, "fixturenames", ())
    for fixture, group in GROUPS:
        if fixture in names or item.get_closest_marker(fixture) is not None:
            return group
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The property-based tests (1-4 s each, the unit tier's longest) first, in their order:
    # the workers start on them, and the run does not end on one of them while the other
    # workers have nothing left (the same order in every worker, as xdist requires).
    items.sort(key=lambda item: not getattr(getattr(item, "obj", None), "is_hypothesis_test",
                                           False))
    for item in items:
        if item.get_closest_marker("docker") is not None:
            item.fixturenames.insert(0, "docker_engine")  # type: ignore[attr-defined]
        group = _group(item)
        if group is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(group))


class _Phases:
    """Deselection by ``--phase``, as a plugin of its own: its hook must run after -k, -m,
    ``--deselect`` and ``--lf`` have chosen, while the grouping above runs first."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        serial = {item for item in items if item.get_closest_marker("serial") is not None}
        _write_counts(parallel=len(items) - len(serial), serial=len(serial))
        phase = config.getoption("--phase")
        if phase == "all":
            return
        keep = [item for item in items if (item in serial) == (phase == "serial")]
        if len(keep) != len(items):
            kept = set(keep)
            config.hook.pytest_deselected(items=[item for item in items if item not in kept])
            items[:] = keep


def _write_counts(*, parallel: int, serial: int) -> None:
    """Tell ``scripts/test`` how many selected tests each phase has (every worker writes the
    same numbers), so that it can tell an empty phase from a run that selected nothing."""
    target = os.environ.get(COUNTS_ENV)
    if not target:
        return
    path = Path(target)
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(json.dumps({"parallel": parallel, "serial": serial}))
    staging.replace(path)
