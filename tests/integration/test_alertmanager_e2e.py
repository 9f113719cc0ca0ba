"""The loop end to end: a real Prometheus scrapes the test app's containers (Docker service
discovery, each series labelled with its ``revision``), evaluates an alert rule every second
and sends what fires to a real Alertmanager; our alertmanager gate watches that Alertmanager.

The broken release reports an error ratio of 0.5 one second after it starts: the rule
fires (``for: 0s``), Alertmanager lists the alert, the gate fails, the deploy is rolled back.
A good release, judged by the same gate, passes. The gate's filter selects the new
revision's alerts (``revision="${COMPOSE_ROLLBACK_REVISION}"``), so an alert the broken
release left active for a while does not fail the next, good, one.

Nothing here sleeps: the soak is long enough for discovery (Prometheus applies it at most every
5 s), a scrape, an evaluation and the send; the deploy waits for the gate's verdict. The
broken release's alert arrives ~6-9 s after its up starts; a good release (and the restore,
which soaks as long as the revision it restores) soaks twice that, the broken one 30 s, an
upper bound its failure must come well within.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gates_helpers import (
    assert_deployed,
    assert_rolled_back,
    history,
    popen_cli,
    report,
    service,
    settings,
    up,
    write_compose,
)

from support.alertmanager import Alertmanager
from support.compose_project import ComposeProject
from support.prereq import need
from support.prometheus import Prometheus, prometheus_binary
from support.testimages import AppImages

pytestmark = pytest.mark.docker

FILTER = ['service="web"', 'severity="page"', 'revision="${COMPOSE_ROLLBACK_REVISION}"']
#: Soak of a good release: long enough for Prometheus to discover, scrape and evaluate it
#: (what the broken release's alert needs), so a good release passing means something.
GOOD_SOAK = 15
#: Soak of the broken release: its alert must fail the gate well before this ends.
BROKEN_SOAK = 30


@pytest.fixture
def alerting(project: ComposeProject, alertmanager: Alertmanager,
             tmp_path: Path) -> Iterator[Prometheus]:
    """A Prometheus of this test's own: it discovers the project's containers and sends its
    alerts to the test's Alertmanager."""
    binary = need(prometheus_binary(), "prometheus is not installed (Debian package prometheus)")
    rule = {"alert": "AppErrorsHigh", "for": "0s", "labels": {"severity": "page"},
            "expr": f'app_errors_ratio{{job="docker-{project.name}"}} > 0.1',
            "annotations": {"summary": "error ratio {{ $value }}"}}
    (tmp_path / "prom").mkdir()
    server = Prometheus(tmp_path / "prom", binary=binary,
                        alertmanager=f"127.0.0.1:{alertmanager.port}", rules=[rule])
    server.start()
    try:
        server.discover(project.name)
        yield server
    finally:
        server.stop()


def _release(project: ComposeProject, images: AppImages, alertmanager: Alertmanager,
             release: int, *, broken: bool = False) -> None:
    env = {"RELEASE": str(release)}
    if broken:
        env |= {"METRIC_AFTER": "1", "METRIC_VALUE": "0.5"}
    gate = settings(f"""
        min_healthy: {BROKEN_SOAK if broken else GOOD_SOAK}s
        timeout: 90s
        gates:
          - alertmanager: {alertmanager.url}
            filter: {json.dumps(FILTER)}
    """, base="")
    write_compose(project, {"web": service(images.local("healthy"), env=env)}, settings=gate)


def test_a_prometheus_alert_rule_rolls_the_broken_release_back_through_alertmanager(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager,
    alerting: Prometheus, capsys: pytest.CaptureFixture[str]
) -> None:
    _release(project, images, alertmanager, 1)
    began = time.monotonic()
    assert_deployed(up(project, code=0)[1], 1)
    good_took = time.monotonic() - began
    scraped = alerting.value(f'app_errors_ratio{{job="docker-{project.name}",revision="1"}}')
    assert scraped == 0.0, "Prometheus never scraped revision 1 during its soak"

    _release(project, images, alertmanager, 2, broken=True)
    began = time.monotonic()
    process = popen_cli(project, "up", "--json")
    assert process.stderr is not None
    decided = None
    for line in process.stderr:  # when the gate failed, before the restore's own soak
        if decided is None and "revision 2 failed" in line:
            decided = time.monotonic() - began
    stdout = process.stdout.read() if process.stdout else ""
    assert process.wait(timeout=120) == 1, stdout
    broken_took = time.monotonic() - began
    data = json.loads(stdout)
    assert_rolled_back(project, data, revision=2, restored=1, running={"web": "RELEASE=1"},
                       reason=(f"gate alertmanager {alertmanager.url} failed",
                               'AppErrorsHigh{service="web", severity="page", revision="2"}'))
    # Those labels came from Prometheus (the revision from the container's label) through
    # Alertmanager. Once revision 2's containers are gone its series go stale and Prometheus
    # resolves the alert, so it may already be gone from Alertmanager's list.
    assert decided is not None and decided < BROKEN_SOAK, (
        f"revision 2 failed {decided}s after the start of up: after its soak?")

    _release(project, images, alertmanager, 3)
    began = time.monotonic()
    assert_deployed(up(project, code=0)[1], 3)
    again_took = time.monotonic() - began
    assert alerting.value(
        f'app_errors_ratio{{job="docker-{project.name}",revision="3"}}') == 0.0
    assert history(project)[2]["status"] == "failed"
    report(capsys, f"alertmanager e2e: good release deployed in {good_took:.1f}s "
           f"({GOOD_SOAK} s soak); broken release failed through Prometheus -> Alertmanager "
           f"{decided:.1f}s after up started, and was back on revision 1 ({GOOD_SOAK} s soak) "
           f"after "
           f"{broken_took:.1f}s; the next good release took {again_took:.1f}s",
           name="alertmanager_e2e")
