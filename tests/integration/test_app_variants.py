"""The test app's answers name their release, and some releases ignore SIGTERM.

What the zero-downtime rig relies on: a load generator can tell which release answered
(``/`` is ``RELEASE``, default the variant; CGI answers carry ``X-Release``), ``stubborn``
makes ``docker stop`` wait the whole grace period, and ``slow`` serves ``/`` before its
``/health`` passes (a release a proxy must not send traffic to yet).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.compose_project import ComposeProject
from support.helpers import docker, http_get, wait_for
from support.testimages import AppImages

# One worker for the whole file: its module fixture (every variant, up) is built once.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("app-variants")]

GRACE = 2.0


#: Each service of the file's project: the variant its image is, and its environment.
SERVICES: dict[str, tuple[str, str]] = {
    "named": ("healthy", "{RELEASE: r-7}"),
    "default": ("healthy", ""),
    "stubborn": ("stubborn", ""),
    "stubborn-unhealthy": ("stubborn-unhealthy", ""),
    "slow": ("slow", '{SLOW_START: "60"}'),
}


@contextmanager
def _up(images: AppImages, parent: Path, names: Iterable[str]) -> Iterator[ComposeProject]:
    """A project of these ``SERVICES``, started (not waited for), removed afterwards."""
    wanted = list(names)
    images.build_all(sorted({SERVICES[name][0] for name in wanted}))
    lines = ["x-app: &app", "  pull_policy: never", '  ports: ["127.0.0.1::8080"]',
             f"  stop_grace_period: {GRACE}s", "services:"]
    for name in wanted:
        variant, environment = SERVICES[name]
        lines += [f"  {name}:", "    <<: *app", f"    image: {images.local(variant)}"]
        lines += [f"    environment: {environment}"] if environment else []
    project = ComposeProject(parent)
    project.write("\n".join(lines) + "\n")
    try:
        project.compose("up", "--detach")
        yield project
    finally:
        project.cleanup()


@pytest.fixture(scope="module")
def apps(
    docker_engine: None, images: AppImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeProject]:
    with _up(images, tmp_path_factory.mktemp("apps"), SERVICES) as project:
        yield project


@pytest.fixture
def stoppable(docker_engine: None, images: AppImages, tmp_path: Path) -> Iterator[ComposeProject]:
    """The three services the (serial) stop test needs, and no more: a project of its own."""
    with _up(images, tmp_path, ["stubborn", "stubborn-unhealthy", "default"]) as project:
        yield project


def _serving(project: ComposeProject, service: str) -> None:
    url = project.url(service)
    wait_for(lambda: http_get(url).status == 200, 10, what=f"{service} to serve")


def test_every_answer_names_the_release(apps: ComposeProject) -> None:
    _serving(apps, "named")
    assert http_get(apps.url("named")).body == "r-7"
    health = http_get(apps.url("named", "/health"))
    assert (health.status, health.headers.get("X-Release")) == (200, "r-7")
    metrics = http_get(apps.url("named", "/cgi-bin/metrics"))
    assert metrics.headers.get("X-Release") == "r-7"
    assert 'release="r-7"' in metrics.body
    _serving(apps, "default")
    assert http_get(apps.url("default")).body == "healthy"  # the variant's name
    assert http_get(apps.url("default", "/health")).headers.get("X-Release") == "healthy"


def test_stubborn_serves_like_its_mode(apps: ComposeProject) -> None:
    _serving(apps, "stubborn")
    assert http_get(apps.url("stubborn")).body == "stubborn"
    wait_for(lambda: apps.health("stubborn") == "healthy", 10, what="stubborn healthy")
    assert http_get(apps.url("stubborn-unhealthy", "/health")).status == 500


def test_slow_serves_before_its_health_passes(apps: ComposeProject) -> None:
    _serving(apps, "slow")
    assert http_get(apps.url("slow", "/health")).status == 503
    assert apps.health("slow") == "starting"


@pytest.mark.serial  # a stop under 1 s
def test_stubborn_ignores_sigterm_and_is_killed_after_the_grace_period(
    stoppable: ComposeProject,
) -> None:
    services = ["stubborn", "stubborn-unhealthy", "default"]
    for service in services:
        _serving(stoppable, service)
    ids = {service: str(stoppable.container(service)["Id"]) for service in services}

    def stop(service: str) -> tuple[float, int]:
        began = time.monotonic()
        docker("stop", "--time", str(int(GRACE)), ids[service])
        took = time.monotonic() - began
        code = docker("inspect", "--format", "{{.State.ExitCode}}", ids[service]).stdout
        return took, int(code)

    with ThreadPoolExecutor(len(services)) as pool:
        stopped = dict(zip(services, pool.map(stop, services), strict=True))
    for service in ("stubborn", "stubborn-unhealthy"):
        took, code = stopped[service]
        assert took >= GRACE - 0.1 and code == 137, (service, stopped)  # SIGKILL at the end
    took, code = stopped["default"]
    assert took < GRACE / 2 and code == 0, stopped  # the trap exits at once
