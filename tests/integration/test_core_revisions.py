"""Issue 3 end to end: the commands that work on recorded revisions: ``revert --to``, a revert
to a revision that lacked a service, ``pin`` and ``status`` drift, ``diff``, ``prune``.
"""

from __future__ import annotations

import pytest
from core_helpers import (
    FAST,
    cli,
    cli_json,
    fresh_image,
    history,
    image_id,
    is_running,
    overlay,
    retention_tag,
    running_image,
    service,
    services,
    statuses,
    up,
    write_compose,
)

from support.compose_project import ComposeProject
from support.testimages import AppImages

# -- 6. revert --to an older revision -----------------------------------------------------------


@pytest.mark.docker
def test_revert_to_an_older_revision_is_recorded_as_a_new_one(
    project: ComposeProject, images: AppImages
) -> None:
    ids = {}
    for version in ("v1", "v2", "v3"):
        ref, ids[version] = fresh_image(images, project, version)
        write_compose(project, services(app=service(ref)))
        up(project)
    assert running_image(project, "app") == ids["v3"]

    _, result = cli_json(project, "revert", "--to", "1", *FAST)
    assert (result["outcome"], result["revision"]) == ("deployed", 4), result
    assert running_image(project, "app") == ids["v1"]
    revs = {r["number"]: r for r in history(project)}
    assert (revs[4]["kind"], revs[4]["restores"], revs[4]["status"]) == ("revert", 1, "deployed")
    assert revs[4]["pins"]["app"]["id"] == ids["v1"]
    assert [revs[n]["status"] for n in (1, 2, 3)] == ["superseded"] * 3
    assert f"image: {ids['v1']}" in overlay(project, 4).read_text()
    assert (project.state_dir / "current.yaml").read_text() == overlay(project, 4).read_text()


# -- 7. pin a running project, then drift -------------------------------------------------------


@pytest.mark.docker
def test_pin_adopts_a_running_project_and_status_reports_drift(
    project: ComposeProject, images: AppImages
) -> None:
    write_compose(project, services(app=service(images.local("healthy"))))
    project.compose("up", "--detach", "--wait")
    assert not project.state_dir.exists()

    _, pinned = cli_json(project, "pin", "-m", "adopt")
    assert (pinned["number"], pinned["kind"], pinned["status"]) == (1, "pin", "deployed"), pinned
    assert pinned["pins"]["app"]["id"] == images.id("healthy")
    assert statuses(project) == {1: "deployed"}
    assert overlay(project, 1).is_file()

    _, clean = cli_json(project, "status")
    assert (clean["project"], clean["current"]) == (project.name, 1), clean
    assert clean["drift"] is False, clean
    [app] = clean["services"]
    assert app["pinned_id"] == images.id("healthy") and app["drift"] == []
    assert [c["image_id"] for c in app["containers"]] == [images.id("healthy")]

    other_ref, other = fresh_image(images, project, "by-hand")
    write_compose(project, services(app=service(other_ref)))
    project.compose("up", "--detach")
    assert running_image(project, "app") == other

    _, drifted = cli_json(project, "status")
    assert drifted["drift"] is True, drifted
    [app] = drifted["services"]
    assert app["pinned_id"] == images.id("healthy")
    assert app["drift"], app
    assert [c["image_id"] for c in app["containers"]] == [other]


# -- 8. diff ------------------------------------------------------------------------------------


@pytest.mark.docker
def test_diff_shows_image_and_environment_changes(
    project: ComposeProject, images: AppImages
) -> None:
    one_ref, one = fresh_image(images, project, "v1")
    two_ref, two = fresh_image(images, project, "v2")
    write_compose(project, services(app=service(one_ref, env={"GREETING": "hello-one"})))
    up(project)
    write_compose(project, services(app=service(two_ref, env={"GREETING": "hello-two"})))
    up(project)

    text = cli(project, "diff").stdout
    assert one[7:19] in text and two[7:19] in text, text
    assert "GREETING" in text and "hello-one" in text and "hello-two" in text, text
    assert cli(project, "diff", "1", "2").stdout == text

    _, data = cli_json(project, "diff")
    assert (data["from"], data["to"]) == (1, 2)
    [app] = data["services"]
    assert app["service"] == "app"
    assert app["image"] == {"before": one, "after": two}
    changes = [c for c in app["changes"] if "GREETING" in c["path"]]
    assert [(c["before"], c["after"]) for c in changes] == [("hello-one", "hello-two")], app
    _, explicit = cli_json(project, "diff", "1", "2")
    assert explicit == data
    _, backwards = cli_json(project, "diff", "2", "1")
    assert backwards["services"][0]["image"] == {"before": two, "after": one}


# -- 9. prune -----------------------------------------------------------------------------------


@pytest.mark.docker
def test_prune_keeps_the_newest_the_current_and_the_last_good(
    project: ComposeProject, images: AppImages
) -> None:
    refs, ids = {}, {}
    for version in ("v1", "v2", "v3", "v4"):
        refs[version], ids[version] = fresh_image(images, project, version)
        write_compose(project, services(app=service(refs[version])))
        up(project)
    write_compose(project, services(app=service(images.local("crash"))))
    up(project, check=1)
    assert statuses(project) == {
        1: "superseded",
        2: "superseded",
        3: "superseded",
        4: "deployed",
        5: "failed",
    }
    repository = f"{project.name}-img"
    tags = {v: retention_tag(repository, project, ids[v]) for v in ids}
    assert all(image_id(tag) for tag in tags.values())

    # keep 2 = revisions 4 and 5; 4 is also current, and 3 (the last good) must stay too
    _, pruned = cli_json(project, "prune", "--keep", "2")
    assert sorted(pruned["pruned"]) == [1, 2], pruned
    assert sorted(r["number"] for r in history(project)) == [3, 4, 5]
    assert statuses(project) == {3: "superseded", 4: "deployed", 5: "failed"}
    assert [p.name for p in sorted((project.state_dir / "revisions").iterdir())] == [
        "0003.yaml",
        "0004.yaml",
        "0005.yaml",
    ]
    assert (project.state_dir / "current.yaml").read_text() == overlay(project, 4).read_text()
    assert image_id(tags["v1"]) is None and image_id(tags["v2"]) is None
    assert image_id(tags["v3"]) == ids["v3"] and image_id(tags["v4"]) == ids["v4"]
    assert image_id(refs["v1"]) == ids["v1"]  # the user's own tag is not ours to remove

    # The history is still usable: revert goes to the last good one, diff reads both.
    _, back = cli_json(project, "revert", *FAST)
    assert (back["outcome"], back["revision"]) == ("deployed", 6), back
    assert running_image(project, "app") == ids["v3"]
    cli(project, "diff", "3", "4")
    # Now 6 is current and 4 the last good one; 5 is among the newest two: only 3 goes.
    _, again = cli_json(project, "prune", "--keep", "2")
    assert sorted(again["pruned"]) == [3], again
    assert statuses(project) == {4: "superseded", 5: "failed", 6: "deployed"}
    assert not overlay(project, 3).exists()
    # ...but v3's retention tag stays: revision 6 (the revert) runs that same image.
    assert image_id(tags["v3"]) == ids["v3"] and image_id(tags["v4"]) == ids["v4"]


# -- 14. reverting to a revision that lacked a service ------------------------------------------


@pytest.mark.docker
def test_revert_to_a_revision_without_a_service_removes_its_containers(
    project: ComposeProject, images: AppImages
) -> None:
    healthy = images.local("healthy")
    write_compose(project, services(app=service(healthy)))
    up(project)
    write_compose(project, services(app=service(healthy), extra=service(healthy)))
    up(project)
    assert is_running(project, "extra")
    app_id = project.container("app")["Id"]

    _, result = cli_json(project, "revert", *FAST)
    assert (result["outcome"], result["revision"]) == ("deployed", 3), result
    assert project.containers("extra") == []
    assert is_running(project, "app")
    assert project.container("app")["Id"] == app_id  # untouched: its definition is the same
    _, report = cli_json(project, "status")
    assert report["drift"] is False, report
    assert [s["service"] for s in report["services"]] == ["app"]
