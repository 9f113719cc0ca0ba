"""Issue 11: under load behind a real HAProxy, start-first loses nothing; stop-first does.

Two replicas of the test app (no host port) behind HAProxy, 20 requests a second through the
proxy's loopback port; every answer names its release. For a good release, a release whose
healthcheck fails and one that crashes at start, in the same test:

- ``order: start-first``: 0 failed requests and 0 answered by the broken release; a good one
  serves every request once the deploy is over;
- ``order: stop-first`` (Compose's recreate) from the same good state: users see the outage,
  so the comparison cannot rot.
"""

from __future__ import annotations

import time

import pytest
from rollout_helpers import FAST, states

from support.compose_project import ComposeProject
from support.haproxy import Proxies, Proxy, container_addresses
from support.load import Load, LoadSummary
from support.testimages import AppImages

pytestmark = pytest.mark.docker

RATE = 20.0


def _compose(image: str, *, release: str, order: str) -> str:
    return "\n".join([
        "services:", "  web:", f"    image: {image}", "    pull_policy: never",
        f"    environment: {{RELEASE: {release}}}",
        "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}",
        f"    deploy: {{replicas: 2, update_config: {{order: {order}}}}}",
    ]) + "\n"


def _good_state(project: ComposeProject, images: AppImages, proxy: Proxy | None, *,
                order: str, release: str) -> None:
    """Revision of the healthy image under ``release``, both replicas UP in the proxy."""
    project.write(_compose(images.local("healthy"), release=release, order=order))
    project.run("up", *FAST, check=True)
    if proxy is not None:
        proxy.wait_up(container_addresses(project, "web"), timeout=20)


def _deploy_under_load(project: ComposeProject, images: AppImages, proxy: Proxy, *,
                       variant: str, order: str) -> tuple[LoadSummary, LoadSummary, int, float]:
    """``up`` of ``variant`` (release ``new``) under load; the load during the deploy (until
    the proxy has settled) and in the 2 s after it, the exit code and the deploy's seconds."""
    release = "new" if variant == "healthy" else "broken"
    with Load(proxy.url(), rate=RATE, max_seconds=120) as load:
        load.wait_requests(20)
        # Steady state first: a proxy started a moment ago may still answer 503 (no server
        # in rotation yet); the deploy begins once a whole second went through cleanly.
        deadline = load.now() + 15.0
        while load.summary().between(load.now() - 1.0).failed and load.now() < deadline:
            load.wait_until(load.now() + 0.5)
        steady = load.summary().between(load.now() - 1.0)
        assert steady.failed == 0 and steady.total > 0, steady.describe()
        began = load.now()
        project.write(_compose(images.local(variant), release=release, order=order))
        code = project.run("up", *FAST).returncode
        took = load.now() - began
        proxy.wait_up(container_addresses(project, "web"), timeout=20)
        settled = load.now()
        load.wait_until(settled + 2.0)
    summary = load.stop()
    return summary.between(began, settled), summary.between(settled), code, took


@pytest.mark.parametrize("variant", ["healthy", "unhealthy", "crash"])
def test_start_first_loses_nothing_under_load_and_stop_first_shows_its_outage(
        project: ComposeProject, images: AppImages, haproxy: Proxies, variant: str) -> None:
    images.build_all(["healthy", variant])
    _good_state(project, images, None, order="start-first", release="old")
    proxy = haproxy.start(project)
    proxy.wait_up(container_addresses(project, "web"), timeout=20)
    serving = set(states(project))

    during, after, code, took = _deploy_under_load(project, images, proxy, variant=variant,
                                                   order="start-first")
    print(f"\nstart-first -> {variant}: exit {code} in {took:.1f}s;\n  deploy: "
          f"{during.describe()}\n  after:  {after.describe()}")
    assert code == (0 if variant == "healthy" else 1)
    assert during.failed == 0 and after.failed == 0, during.describe()
    assert "broken" not in during.by_release and "broken" not in after.by_release
    if variant == "healthy":
        assert after.by_release == {"new": after.total}, after.describe()
        assert set(states(project)).isdisjoint(serving)
    else:
        assert set(states(project)) == serving  # the old release never left
        assert after.by_release == {"old": after.total}, after.describe()

    time.sleep(0.5)
    _good_state(project, images, proxy, order="stop-first", release="old")
    during, after, code, took = _deploy_under_load(project, images, proxy, variant=variant,
                                                   order="stop-first")
    print(f"stop-first -> {variant}: exit {code} in {took:.1f}s;\n  deploy: "
          f"{during.describe()}\n  after:  {after.describe()}")
    assert code == (0 if variant == "healthy" else 1)
    assert during.failed > 0, during.describe()  # Compose's recreate: users see it
    assert after.failed == 0, after.describe()  # and then the right release serves again
