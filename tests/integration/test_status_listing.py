"""``status`` reads the project's containers from one ``docker ps`` line each, and inspects
only the ones that line cannot answer for. Against real containers in every state a project
meets: what a conclusive line says is what ``inspect`` says, and the others are inspected."""

from __future__ import annotations

import pytest
from core_helpers import FAST, cli_json, service, services, write_compose

from compose_rollback.dockerdata import ContainerState, Listed
from compose_rollback.engine import Engine
from support.compose_project import ComposeProject
from support.helpers import docker, wait_for
from support.testimages import AppImages

pytestmark = pytest.mark.docker

COMMON = ("name", "service", "oneoff", "status", "health", "image_id")


@pytest.fixture
def app(images: AppImages) -> AppImages:
    images.build_all(["healthy", "unhealthy", "crash", "slow"])
    return images


def _said(item: Listed | ContainerState) -> tuple[object, ...]:
    return tuple(getattr(item, field) for field in COMMON)


def test_a_conclusive_line_says_what_inspect_says(project: ComposeProject,
                                                    app: AppImages) -> None:
    write_compose(project, services(
        healthy=service(app.local("healthy")),
        unhealthy=service(app.local("unhealthy")),
        starting=service(app.local("slow"), env={"SLOW_START": "600"}),
        plain=service(app.local("healthy"), extra="healthcheck: {disable: true}"),
        crashed=service(app.local("crash")),
        paused=service(app.local("healthy")),
    ))
    project.compose("up", "-d")  # containers as Compose makes them
    wait_for(lambda: [project.health(s) for s in ("healthy", "unhealthy", "paused", "crashed")]
             == ["healthy", "unhealthy", "healthy", "exited"], timeout=60, what="the states")
    docker("pause", project.container("paused")["Id"])
    # Made outside Compose, with the project's labels but not Compose's image label (and no
    # healthcheck: a "starting" that turns "healthy" between the reads below would move).
    docker("run", "-d", "--no-healthcheck", "--label",
           f"com.docker.compose.project={project.name}",
           "--label", "com.docker.compose.service=stray", app.local("healthy"))
    project.compose("run", "-d", "--no-deps", "plain")  # a one-off run

    engine = Engine()
    listing = engine.listing(project.name)
    inspected = {c.id: c for c in engine.inspect_containers([c.id for c in listing])}
    again = engine.listing(project.name)
    assert listing == again, f"the states moved while being read: {listing} then {again}"

    by_service = {c.service: c for c in listing if not c.oneoff}
    assert {s: c.conclusive for s, c in sorted(by_service.items())} == {
        "crashed": False, "healthy": True, "paused": False, "plain": True, "starting": True,
        "stray": False, "unhealthy": True}
    assert [c.oneoff for c in listing].count(True) == 1
    assert {s: c.health for s, c in by_service.items() if c.conclusive} == {
        "healthy": "healthy", "plain": None, "starting": "starting", "unhealthy": "unhealthy"}
    for item in listing:
        if item.conclusive or item.oneoff:
            assert _said(item) == _said(inspected[item.id]), item
    # What the line cannot tell: the exited container keeps its last health; the stray one
    # has no image label.
    stray = by_service["stray"]
    assert stray.image_id == "" and inspected[stray.id].image_id.startswith("sha256:")
    assert inspected[by_service["crashed"].id].status == "exited"


def test_status_reports_what_inspect_says_in_one_listing(project: ComposeProject,
                                                           app: AppImages) -> None:
    write_compose(project, services(
        web=service(app.local("healthy")),
        plain=service(app.local("healthy"), extra="healthcheck: {disable: true}"),
    ))
    cli_json(project, "up", *FAST)
    _, report = cli_json(project, "status")
    expected = {}
    for name in ("web", "plain"):
        found = project.container(name)
        health = (found["State"].get("Health") or {}).get("Status")
        expected[name] = [{"container": found["Name"].lstrip("/"), "state": "running",
                           "health": health, "image_id": found["Image"]}]
    assert {s["service"]: s["containers"] for s in report["services"]} == expected
    assert report["drift"] is False and expected["web"][0]["health"] == "healthy"

    # A container replaced by hand with another image: inspected, and reported as drift.
    write_compose(project, services(
        web=service(app.local("unhealthy")),
        plain=service(app.local("healthy"), extra="healthcheck: {disable: true}"),
    ))
    project.compose("up", "-d", "--no-deps", "web")
    _, drifted = cli_json(project, "status", check=False)
    web = next(s for s in drifted["services"] if s["service"] == "web")
    assert drifted["drift"] is True
    assert web["containers"][0]["image_id"] == project.container("web")["Image"]
    assert any("not the pinned one" in line for line in web["drift"]), web
