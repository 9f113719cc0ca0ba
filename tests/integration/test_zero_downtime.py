"""Issue 11: under load behind a real HAProxy, start-first loses nothing; stop-first does.

Two replicas of the test app (no host port) behind HAProxy, 20 requests a second through the
proxy's loopback port; every answer names its release. For a good release, a release whose
healthcheck fails, one that crashes at start, and one that Docker calls healthy but that fails
the service's ``http`` gate (``/cgi-bin/ready`` answers 500; the proxy checks that same path,
as it must: a proxy checking only ``/health`` would serve it until the gate decides), in the
same test:

- ``order: start-first``: 0 failed requests and 0 answered by the broken release; a good one
  serves every request once the deploy is over;
- ``order: stop-first`` (Compose's recreate) from the same good state: users see the outage,
  so the comparison cannot rot.
"""

from __future__ import annotations

import pytest
from rollout_helpers import FAST, states

from support.compose_project import ComposeProject
from support.haproxy import Proxies, Proxy, container_addresses
from support.load import Load, LoadSummary
from support.testimages import AppImages

# serial: counts failed requests under load; parallel load must not make or hide one.
pytestmark = [pytest.mark.docker, pytest.mark.serial]

RATE = 20.0
#: "gate-fail": the healthy image with READY_CODE=500: Docker-healthy, refused by the gate.
GATE_FAIL = "gate-fail"
READY = "/cgi-bin/ready"
#: The app's healthcheck: probes every 0.5 s (the image's own: 1 s), so a deploy's gate hears
#: "healthy" or "unhealthy" sooner; a 10 s timeout, so a slow answer is not a failure. What the
#: test proves (start-first loses nothing, stop-first shows its outage) does not depend on how
#: soon Docker's health decides, and Docker's health is not what the proxy checks.
HEALTHCHECK = "    healthcheck: {interval: 500ms, timeout: 10s, retries: 2}"
#: Setting up a good state (no deploy under test): no soak; the proxy's own view is awaited.
SETUP = ("--min-healthy", "0", "--timeout", "60s")
#: What the ``http`` gate of the gate-fail case asks (from inside each new container).
READY_GATE = ["    x-rollback:", "      gates:",
              f"        - http: http://127.0.0.1:8080{READY}", "          from: service",
              "          status: 200", "          interval: 0.5s", "          failures: 2"]


def _image(variant: str) -> str:
    return "healthy" if variant == GATE_FAIL else variant


def _compose(image: str, *, release: str, order: str, gated: bool = False,
             broken_gate: bool = False) -> str:
    ready = ", READY_CODE: '500'" if broken_gate else ""
    return "\n".join([
        "services:", "  web:", f"    image: {image}", "    pull_policy: never",
        f"    environment: {{RELEASE: {release}{ready}}}",
        HEALTHCHECK,
        f"    deploy: {{replicas: 2, update_config: {{order: {order}}}}}",
        *(READY_GATE if gated else []),
    ]) + "\n"


def _good_state(project: ComposeProject, images: AppImages, proxy: Proxy | None, *,
                order: str, release: str, gated: bool = False) -> None:
    """Revision of the healthy image under ``release``, both replicas UP in the proxy."""
    project.write(_compose(images.local("healthy"), release=release, order=order,
                           gated=gated))
    project.run("up", *SETUP, check=True)
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
        project.write(_compose(images.local(_image(variant)), release=release, order=order,
                               gated=variant == GATE_FAIL, broken_gate=variant == GATE_FAIL))
        code = project.run("up", *FAST).returncode
        took = load.now() - began
        proxy.wait_up(container_addresses(project, "web"), timeout=20)
        settled = load.now()
        load.wait_until(settled + 2.0)
    summary = load.stop()
    return summary.between(began, settled), summary.between(settled), code, took


@pytest.mark.parametrize("variant", ["healthy", "unhealthy", "crash", GATE_FAIL])
def test_start_first_loses_nothing_under_load_and_stop_first_shows_its_outage(
        project: ComposeProject, images: AppImages, haproxy: Proxies, variant: str) -> None:
    images.build_all(["healthy", _image(variant)])
    gated = variant == GATE_FAIL
    _good_state(project, images, None, order="start-first", release="old", gated=gated)
    # The proxy's check asks what the gate asks (for the other cases /cgi-bin/ready is /health).
    proxy = haproxy.start(project, health_path=READY if gated else "/health/")
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

    _good_state(project, images, proxy, order="stop-first", release="old", gated=gated)
    replaced = set(states(project))
    during, after, code, took = _deploy_under_load(project, images, proxy, variant=variant,
                                                   order="stop-first")
    print(f"stop-first -> {variant}: exit {code} in {took:.1f}s;\n  deploy: "
          f"{during.describe()}\n  after:  {after.describe()}")
    assert code == (0 if variant == "healthy" else 1)
    if variant == "healthy":
        # Compose's recreate stops each old container before its replacement runs; whether a user
        # sees it depends on the machine's speed: a quick recreate can fall inside the proxy's
        # retry window (retries 3, connect 1s) and lose nothing. How many requests fail is a
        # figure (bench/zero_downtime.py), not a test; that every old container was stopped is.
        assert set(states(project)).isdisjoint(replaced)
    else:
        # A broken release is live until it is caught: far longer than any retry window.
        assert during.failed > 0, during.describe()
    assert after.failed == 0, after.describe()  # and then the right release serves again
