"""Integration fixtures: loopback registry, test images, per-test compose projects.

Loaded by ``tests/conftest.py`` (``pytest_plugins = ["support.fixtures"]``).

``registry`` (session)
    A real ``docker-registry`` on ``127.0.0.1:<free port>``: ``.host``, ``.ref(repo, tag)``,
    ``.new_repo()``, ``.digest(repo, tag)``, ``.tags(repo)``, ``.stop()``, ``.start()`` (same
    port and storage) and ``with registry.down(): ...``.
``images`` (session)
    The test application (``tests/support/images/``), one image per variant (see
    ``support.testimages.VARIANTS``): ``.local(variant)`` -> ``crt-app-<session>:<variant>``,
    ``.push(variant, repo, tag)`` -> ``<host>/<repo>@sha256:...``, ``.build_fresh(variant,
    tag)`` -> new image id. Removed at the end of the session.
``prometheus`` (session)
    A real Prometheus on ``127.0.0.1:<free port>`` scraping every second: ``.url`` (for a
    prometheus gate), ``.scrape("127.0.0.1:<port>") -> name``, ``.wait_scraped(name)``,
    ``.query(expr)``, ``.value(expr)``, ``.forget(name)``; ``.discover(project)`` /
    ``.undiscover(project)``: a compose project's containers by Docker service discovery,
    their series labelled ``revision``, ``service``, ``container``.
``alertmanager`` (function)
    A real Alertmanager of its own on ``127.0.0.1:<free port>`` (gossip off): ``.url``,
    ``.fire(labels)``, ``.resolve(labels)``, ``.silence(matchers)``, ``.alerts(*filters)``,
    ``.stop()``, ``.start()`` (same port). One per test, so no alert leaks between tests.
``haproxy_image`` (session)
    The FROM-scratch HAProxy image built from the host's ``/usr/sbin/haproxy`` (``.ref`` ->
    ``crt-haproxy-<hex>:2.6``, built on first use, removed at the end of the session).
``haproxy`` (function)
    ``.start(project, service="web", port=8080, network=None, slots=10,
    health_path="/health/", checked_first=True)`` -> ``Proxy`` in front of that service (call
    it after the project's first ``up``: it joins ``<project>_default`` as an external
    network, in its own compose project ``<project>-lb``, so deploys of the app never touch
    it). ``Proxy``: ``.port``, ``.url(path)``, ``.servers()`` (``ServerState``: name, status,
    address), ``.up_addresses()``, ``.wait_up(n | {ip:port, ...})``, ``.logs()``. Every proxy
    is removed after the test, before ``project``. Measure with
    ``support.load.Load(proxy.url())``; ``support.haproxy.container_addresses(project, svc)``
    names containers the way the proxy does. Configuration: ``support.haproxy.haproxy_config``.
``project`` (function)
    A fresh directory and compose project ``crt-<8 hex>``: ``.write()``, ``.write_file()``,
    ``.run()`` (our CLI), ``.compose()`` (plain compose), ``.containers()``, ``.health()``,
    ``.port()``, ``.url()``. Everything it created is removed after the test.

``swarm`` (session)
    A single-node Swarm (``support.swarm.Swarm``): initialised on loopback only if the engine's
    swarm is inactive, and left again at the end only then.
``stack`` (function)
    The Swarm stack of the test's ``project`` (same name): ``.services()``, ``.image(svc)``,
    ``.running(svc)``; removed after the test (before ``project`` cleans up).

Everything created on the shared engine is named ``crt-...`` and removed by exact reference;
nothing else is touched. Under pytest-xdist each worker has its own session fixtures (its own
registry, images, Prometheus); the tests using ``swarm`` run on one worker (tests/conftest.py).
Helpers (``wait_for``, ``http_get``) come from ``support.helpers``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .alertmanager import Alertmanager, alertmanager_binary
from .compose_project import ComposeProject
from .haproxy import HaproxyImage, Proxies, Proxy, haproxy_binary
from .helpers import HttpResponse, http_get, unique_name, wait_for
from .prereq import need
from .prometheus import Prometheus, prometheus_binary
from .registry import Registry, registry_binary
from .swarm import Stack, Swarm, exclusive
from .testimages import VARIANTS, AppImages, find_busybox

__all__ = [
    "VARIANTS",
    "Alertmanager",
    "AppImages",
    "ComposeProject",
    "HaproxyImage",
    "HttpResponse",
    "Prometheus",
    "Proxies",
    "Proxy",
    "Registry",
    "Stack",
    "Swarm",
    "alertmanager",
    "haproxy",
    "haproxy_image",
    "http_get",
    "images",
    "project",
    "prometheus",
    "registry",
    "stack",
    "swarm",
    "wait_for",
]


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real registry on loopback for the whole session (empty at start)."""
    binary = need(registry_binary(),
                  "docker-registry is not installed (Debian package docker-registry)")
    server = Registry(tmp_path_factory.mktemp("registry"), binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def images(
    docker_engine: None,
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AppImages]:
    """The session's test images, built lazily (about a second for the first, less after)."""
    busybox = need(find_busybox(), "no static busybox found (Debian package busybox-static)")
    built = AppImages(registry=registry, workdir=tmp_path_factory.mktemp("images"), busybox=busybox)
    try:
        yield built
    finally:
        built.cleanup()


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A real Prometheus on loopback for the whole session; add targets with ``scrape()``."""
    binary = need(prometheus_binary(), "prometheus is not installed (Debian package prometheus)")
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    """A real Alertmanager on loopback for one test (it starts in well under a second)."""
    binary = need(alertmanager_binary(), "alertmanager is not installed "
                  "(Debian package prometheus-alertmanager)")
    server = Alertmanager(tmp_path_factory.mktemp("alertmanager"), binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def project(docker_engine: None, tmp_path: Path) -> Iterator[ComposeProject]:
    """A fresh compose project directory with a unique name, cleaned up after the test."""
    created = ComposeProject(tmp_path)
    try:
        yield created
    finally:
        created.cleanup()


@pytest.fixture(scope="session")
def haproxy_image(
    docker_engine: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HaproxyImage]:
    """The session's HAProxy image (built on first use, about 2 s), removed at the end."""
    binary = need(haproxy_binary(), "haproxy is not installed (Debian package haproxy)")
    image = HaproxyImage(
        workdir=tmp_path_factory.mktemp("haproxy"),
        binary=binary,
        session=unique_name("s", hex_chars=8).removeprefix("s-"),
    )
    try:
        yield image
    finally:
        image.cleanup()


@pytest.fixture
def haproxy(
    haproxy_image: HaproxyImage, project: ComposeProject, tmp_path: Path
) -> Iterator[Proxies]:
    """Start HAProxy in front of a project's service; every proxy goes after the test.

    Depends on ``project`` so that the proxies, which hold its network, are removed first.
    """
    proxies = Proxies(image=haproxy_image, workdir=tmp_path / "proxies")
    try:
        yield proxies
    finally:
        proxies.cleanup()


@pytest.fixture(scope="session")
def swarm(docker_engine: None) -> Iterator[Swarm]:
    """A Swarm manager on loopback for the session, left as the engine was found."""
    with exclusive():  # no other test run on this host uses the swarm meanwhile
        found = Swarm.ensure()
        try:
            yield found
        finally:
            found.restore()


@pytest.fixture
def stack(swarm: Swarm, project: ComposeProject) -> Iterator[Stack]:
    """The project's Swarm stack, removed after the test (before the project is cleaned up)."""
    del swarm
    created = Stack(project.name)
    try:
        yield created
    finally:
        created.remove()
