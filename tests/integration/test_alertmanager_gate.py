"""The alertmanager gate against a real Alertmanager (Debian's 0.25) on loopback: alerts
injected through its API (``POST /api/v2/alerts``), silenced through it, and end to end from a
real Prometheus alert rule on the test app's metric (``test_alertmanager_e2e.py``).

Every failing gate is met the way a user meets it: revision 1 is good, revision 2 trips the
gate, ``up`` exits 1, revision 1 runs again and ``history`` names the alert.
"""

from __future__ import annotations

import json
import time

import pytest
from gates_helpers import (
    assert_deployed,
    assert_rolled_back,
    history,
    popen_cli,
    service,
    settings,
    up,
    write_compose,
)

from support.alertmanager import Alertmanager
from support.compose_project import ComposeProject
from support.helpers import free_port
from support.testimages import AppImages

pytestmark = pytest.mark.docker

ALERT = {"alertname": "HighErrorRate", "service": "web", "severity": "page"}
FILTER = ['service="web"', 'severity=~"critical|page"']


def _gate(alertmanager: Alertmanager, *, soak: str = "1s") -> str:
    """The service's own ``x-rollback`` block: the alertmanager gate and a soak."""
    return (f"min_healthy: {soak}\ngates:\n  - alertmanager: {alertmanager.url}\n"
            f"    filter: {json.dumps(FILTER)}\n")


def _release(project: ComposeProject, images: AppImages, alertmanager: Alertmanager,
             release: int, *, soak: str = "1s") -> None:
    write_compose(project, {"web": service(images.local("healthy"), env={
        "RELEASE": str(release)}, rollback=_gate(alertmanager, soak=soak))})


def test_an_active_matching_alert_fails_the_gate_and_the_last_good_is_restored(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    _release(project, images, alertmanager, 1)
    assert_deployed(up(project, code=0)[1], 1)

    alertmanager.fire(ALERT, annotations={"summary": "web answers 5xx", "token": "s3cr3t"})
    _release(project, images, alertmanager, 2)
    _, data = up(project, code=1)
    # The alert stays active after the restore: the restore is judged without it.
    failed = assert_rolled_back(
        project, data, revision=2, restored=1, running={"web": "RELEASE=1"},
        reason=(f"gate alertmanager {alertmanager.url} failed", "1 alert firing",
                'HighErrorRate{service="web", severity="page"}'))
    assert "s3cr3t" not in failed["reason"] and "5xx" not in failed["reason"]
    assert alertmanager.alerts(*FILTER), "the alert was no longer active: nothing was proven"


def test_an_alert_that_fires_during_the_soak_fails_the_deploy_before_the_soak_ends(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    _release(project, images, alertmanager, 1)
    assert_deployed(up(project, code=0)[1], 1)
    _release(project, images, alertmanager, 2, soak="120s")
    process = popen_cli(project, "up", "--json")
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:  # the gate has passed once and the soak is on
        seen.append(line)
        if "soaking for 2m" in line:
            break
    else:
        process.wait(timeout=30)
        raise AssertionError("the soak never started:\n" + "".join(seen))
    fired = time.monotonic()
    alertmanager.fire(ALERT)
    stdout, _ = process.communicate(timeout=90)
    took = time.monotonic() - fired
    assert process.returncode == 1, stdout
    assert_rolled_back(project, json.loads(stdout), revision=2, restored=1,
                       running={"web": "RELEASE=1"}, reason=("HighErrorRate",))
    assert took < 60, f"the alert took {took:.1f}s to fail the deploy: not polled in the soak"


def test_an_alert_of_another_service_does_not_fail_the_gate(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    _release(project, images, alertmanager, 1)
    alertmanager.fire({**ALERT, "service": "db"})
    alertmanager.fire({**ALERT, "severity": "info"})
    assert len(alertmanager.alerts()) == 2  # both active: the filter is what lets it pass
    assert_deployed(up(project, code=0)[1], 1)


def test_a_silenced_matching_alert_does_not_fail_the_gate(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    _release(project, images, alertmanager, 1)
    alertmanager.fire(ALERT)
    alertmanager.silence({"alertname": "HighErrorRate", "service": "web"})
    assert not alertmanager.alerts(*FILTER)
    assert alertmanager.alerts(*FILTER, active_only=False), "the alert is gone, not silenced"
    assert_deployed(up(project, code=0)[1], 1)


def test_an_unreachable_alertmanager_fails_the_gate(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    # A project-wide gate this time, as a user writes it once for every service.
    top = settings(f"""
        gates:
          - alertmanager: {alertmanager.url}
            filter: {json.dumps(FILTER)}
    """)
    image = images.local("healthy")
    write_compose(project, {"web": service(image, env={"RELEASE": "1"})}, settings=top)
    assert_deployed(up(project, code=0)[1], 1)
    alertmanager.stop()
    write_compose(project, {"web": service(image, env={"RELEASE": "2"})}, settings=top)
    _, data = up(project, code=1)
    assert_rolled_back(project, data, revision=2, restored=1, running={"web": "RELEASE=1"},
                       reason=(f"gate alertmanager {alertmanager.url} failed",
                               f"Alertmanager at {alertmanager.url} unreachable"))

    # Something that is not an Alertmanager (the app itself: 404) fails it, with the status.
    port = free_port()
    not_am = f"http://127.0.0.1:{port}"
    write_compose(project, {"web": service(image, port=port, env={"RELEASE": "3"})},
                  settings=top.replace(alertmanager.url, not_am))
    _, data = up(project, code=1)
    assert_rolled_back(project, data, revision=3, restored=1,
                       reason=(f"Alertmanager at {not_am} answered 404",))
    assert history(project)[1]["status"] == "deployed"


def test_a_bad_matcher_is_refused_at_load_naming_its_path(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    write_compose(project, {"web": service(images.local("healthy"), rollback=(
        f"gates:\n  - alertmanager: {alertmanager.url}\n"
        "    filter: ['service=\"web\"', 'severity=page']\n"))})
    result = project.run("up", check=2)
    assert "services.web.x-rollback.gates[0].filter[1]" in result.stderr, result.stderr
    assert not project.containers(), "a bad setting changed something"
