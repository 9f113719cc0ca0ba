"""Issue 11: canary rollouts against the real engine.

A canary of one container starts beside the two old ones: a broken one is killed and the old
release never left (same ids, never restarted); a healthy one is promoted and the rest of the
service replaced, every container then carrying the new revision's label.
"""

from __future__ import annotations

import pytest
from rollout_helpers import FAST, states

from support.compose_project import ComposeProject
from support.testimages import AppImages

pytestmark = pytest.mark.docker


def _compose(image: str) -> str:
    return "\n".join([
        "services:", "  web:", f"    image: {image}", "    pull_policy: never",
        "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}",
        "    deploy: {replicas: 2, update_config: {order: start-first}}",
        "    x-rollback: {drain: 0s, canary: {replicas: 1, duration: 2s}}",
    ]) + "\n"


def test_broken_canary_is_aborted_and_the_old_release_never_left(
        project: ComposeProject, images: AppImages) -> None:
    project.write(_compose(images.local("healthy")))
    project.run("up", *FAST, check=True)
    before = states(project)
    project.write(_compose(images.local("unhealthy")))
    result = project.run("up", *FAST, check=1)
    assert "canary: 1 new container(s) beside 2 running" in result.stderr
    assert "canary aborted" in result.stderr
    assert states(project) == before


def test_healthy_canary_is_promoted(project: ComposeProject, images: AppImages) -> None:
    project.write(_compose(images.local("healthy")))
    project.run("up", *FAST, check=True)
    before = states(project)
    tag = f"{project.name}-web:next"
    images.build_fresh("healthy", tag)
    project.write(_compose(tag))
    result = project.run("up", *FAST, check=True)
    assert "canary passed" in result.stderr
    after = states(project)
    assert len(after) == 2 and set(after).isdisjoint(before)
    assert {s["revision"] for s in after.values()} == {"2"}
    assert all(s["health"] == "healthy" for s in after.values())
