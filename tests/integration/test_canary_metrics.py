"""Issue 11: a canary judged by its own metric, as a user's Prometheus sees it.

Prometheus finds the project's containers through Docker service discovery (the local
engine's socket) and labels each series with the container's ``org.compose-rollback.revision``
label; the gate's query selects the new revision with ``${COMPOSE_ROLLBACK_REVISION}``. The
old release's series are healthy all along, so only a query that reads the canary's own
series can tell a bad canary: it is aborted, the old release never left; a good one is
promoted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from rollout_helpers import states

from support.compose_project import ComposeProject
from support.prometheus import Prometheus
from support.testimages import AppImages

pytestmark = pytest.mark.docker

QUERY = 'max(app_errors_ratio{service="web",revision="${COMPOSE_ROLLBACK_REVISION}"})'


def _compose(image: str, prometheus: Prometheus, *, errors: bool, release: str) -> str:
    # METRIC_AFTER=0: app_errors_ratio is METRIC_VALUE from the start; unset: always 0.
    metric = ['      METRIC_AFTER: "0"', '      METRIC_VALUE: "1"'] if errors else []
    return "\n".join([
        "services:", "  web:", f"    image: {image}", "    pull_policy: never",
        "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}",
        "    environment:", f"      RELEASE: {release}", *metric,
        "    deploy: {replicas: 2, update_config: {order: start-first}}",
        "    x-rollback:",
        "      drain: 0s",
        "      canary: {replicas: 1, duration: 2s}",
        "      gates:",
        f"        - prometheus: {prometheus.url}",
        f"          query: '{QUERY}'",
        "          below: 0.5",
        "          interval: 1s",
        "          failures: 2",
    ]) + "\n"


def _steps(stdout: str) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = json.loads(stdout)["steps"]
    return steps


@pytest.fixture
def discovered(project: ComposeProject, prometheus: Prometheus) -> Iterator[Prometheus]:
    prometheus.discover(project.name)
    yield prometheus
    prometheus.undiscover(project.name)


def test_canary_with_a_bad_metric_is_aborted_the_old_release_serving(
        project: ComposeProject, images: AppImages, discovered: Prometheus) -> None:
    image = images.local("healthy")
    project.write(_compose(image, discovered, errors=False, release="one"))
    project.run("up", "--min-healthy", "1s", "--timeout", "60s", check=True)
    before = states(project)
    assert {s["revision"] for s in before.values()} == {"1"}
    project.write(_compose(image, discovered, errors=True, release="two"))
    result = project.run("up", "--json", "--min-healthy", "1s", "--timeout", "60s", check=1)
    assert "canary aborted" in result.stderr, result.stderr
    # --json says which step failed and how: the canary, aborted; then the way back.
    steps = _steps(result.stdout)
    assert steps[0]["direction"] == "forward" and steps[0]["strategy"] == "canary"
    assert steps[0]["services"] == ["web"] and steps[0]["outcome"] == "failed"
    assert steps[0]["canary"] == {"replicas": 1, "outcome": "aborted"}
    assert "not below 0.5" in steps[0]["reason"]
    assert [(s["direction"], s["revision"], s["outcome"]) for s in steps[1:]] == [
        ("back", 1, "passed")]
    assert "not below 0.5" in result.stderr, result.stderr
    assert states(project) == before
    # The old release answered its scrapes all along; the canary's series carried revision 2.
    assert discovered.value(
        f'min(app_errors_ratio{{job="docker-{project.name}",revision="1"}})') == 0.0
    assert discovered.value(
        f'max(max_over_time(app_errors_ratio{{job="docker-{project.name}",revision="2"}}[5m]))'
    ) == 1.0


def test_canary_with_a_good_metric_is_promoted(
        project: ComposeProject, images: AppImages, discovered: Prometheus) -> None:
    image = images.local("healthy")
    project.write(_compose(image, discovered, errors=False, release="one"))
    project.run("up", "--min-healthy", "1s", "--timeout", "60s", check=True)
    before = states(project)
    project.write(_compose(image, discovered, errors=False, release="two"))
    result = project.run("up", "--json", "--min-healthy", "1s", "--timeout", "60s",
                         check=True)
    assert "canary passed" in result.stderr, result.stderr
    steps = _steps(result.stdout)
    assert [(s["strategy"], s["outcome"], s["canary"]) for s in steps] == [
        ("canary", "passed", {"replicas": 1, "outcome": "promoted"})]
    assert steps[0]["new"] == 2 and steps[0]["beside"] == 2
    after = states(project)
    assert len(after) == 2 and set(after).isdisjoint(before)
    assert {s["revision"] for s in after.values()} == {"2"}
