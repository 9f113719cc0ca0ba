"""Issue 3 end to end: ``up`` records a revision with pinned digests and reverts by itself
when the release fails (a moving tag, a crash at start, a configuration-only breakage); what
happens when there is nothing to go back to, or ``--no-rollback`` is given.

Against the real engine and the loopback registry; helpers in ``core_helpers``.
"""

from __future__ import annotations

import re

import pytest
from core_helpers import (
    cli_json,
    container_env,
    fresh_image,
    history,
    is_running,
    overlay,
    running_image,
    service,
    services,
    statuses,
    up,
    write_compose,
)

from support.compose_project import ComposeProject
from support.helpers import wait_for
from support.registry import Registry
from support.testimages import AppImages

# -- 1. a moving tag ----------------------------------------------------------------------------


@pytest.mark.docker
def test_moving_tag_broken_release_is_detected_and_good_digest_runs_again(
    project: ComposeProject, images: AppImages, registry: Registry
) -> None:
    repo = registry.new_repo()
    good = images.push("healthy", repo, "latest")
    good_digest = good.split("@", 1)[1]
    ref = registry.ref(repo, "latest")
    write_compose(project, services(app=service(ref, pull_policy=None)))

    first = up(project, "-m", "release one")
    assert first["outcome"] == "deployed" and first["revision"] == 1, first
    text = overlay(project, 1).read_text()
    assert f"image: {ref}@{good_digest}" in text
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("revision 1" in line for line in header), header
    assert any("release one" in line for line in header), header
    assert running_image(project, "app") == images.id("healthy")

    bad = images.push("unhealthy", repo, "latest")  # the tag moves to a broken release
    images.remove_local(ref)  # the engine must get the new release from the registry
    second = up(project, "--pull", "always", check=1)
    assert second["outcome"] == "rolled_back", second
    assert (second["revision"], second["restored"]) == (2, 1)
    assert second["failure"]["service"] == "app"
    assert f"{ref}@{bad.split('@', 1)[1]}" in overlay(project, 2).read_text()

    assert running_image(project, "app") == images.id("healthy")
    wait_for(lambda: project.health("app") == "healthy", 10, what="restored app healthy")
    revs = {r["number"]: r for r in history(project)}
    assert revs[1]["status"] == "deployed"
    assert revs[2]["status"] == "failed"
    assert "app" in revs[2]["reason"] and "unhealthy" in revs[2]["reason"], revs[2]
    assert revs[2]["restored_to"] == 1
    assert revs[1]["pins"]["app"]["ref"] == ref
    assert revs[1]["pins"]["app"]["image"] == f"{ref}@{good_digest}"
    assert revs[1]["message"] == "release one"
    _, report = cli_json(project, "status")
    assert report["current"] == 1 and report["drift"] is False, report
    assert (project.state_dir / "current.yaml").read_text() == overlay(project, 1).read_text()


# -- pins: digest references stay, services not named keep their pins -------------------------


@pytest.mark.docker
def test_digest_refs_stay_and_services_not_named_keep_their_pins(
    project: ComposeProject, images: AppImages, registry: Registry
) -> None:
    repo = registry.new_repo()
    by_digest = images.push("healthy", repo, "v1")  # <host>/<repo>@sha256:...
    web_ref, web_v1 = fresh_image(images, project, "web-v1")
    write_compose(
        project,
        services(api=service(by_digest, pull_policy=None), web=service(web_ref)),
    )
    up(project)
    pins = history(project)[0]["pins"]
    assert pins["api"]["image"] == by_digest  # already immutable: kept as it is
    assert pins["web"]["image"] == web_v1 and pins["web"]["local"] is True

    web2_ref, _ = fresh_image(images, project, "web-v2")
    api2_ref, api_v2 = fresh_image(images, project, "api-v2")
    write_compose(
        project,
        services(api=service(api2_ref), web=service(web2_ref)),
    )
    web_container = project.container("web")["Id"]
    up(project, "api")  # only api is deployed; web keeps revision 1's pin
    pins = {r["number"]: r["pins"] for r in history(project)}[2]
    assert pins["api"]["id"] == api_v2
    assert pins["web"]["image"] == web_v1
    assert running_image(project, "api") == api_v2
    assert running_image(project, "web") == web_v1
    assert project.container("web")["Id"] == web_container


# -- 2, 3. a crash at start and a configuration-only breakage ----------------------------------


@pytest.mark.docker
def test_crash_at_start_is_rolled_back_and_the_reason_names_the_exit_code(
    project: ComposeProject, images: AppImages
) -> None:
    write_compose(project, services(app=service(images.local("healthy"))))
    assert up(project)["revision"] == 1

    write_compose(project, services(app=service(images.local("crash"))))
    result = up(project, check=1)
    assert (result["outcome"], result["revision"], result["restored"]) == ("rolled_back", 2, 1)
    assert result["failure"]["service"] == "app"
    assert re.search(r"code 3\b", result["failure"]["reason"]), result["failure"]
    assert "crashing with exit code 3" in result["failure"]["logs"], result["failure"]

    assert running_image(project, "app") == images.id("healthy")
    assert is_running(project, "app")
    revs = {r["number"]: r for r in history(project)}
    assert (revs[1]["status"], revs[2]["status"]) == ("deployed", "failed")
    assert re.search(r"code 3\b", revs[2]["reason"]) and "app" in revs[2]["reason"], revs[2]


BREAKAGES = {
    # same image, a runtime setting that makes it crash at once
    "environment": {"env": {"GREETING": "two", "MODE": "crash"}, "extra": ""},
    # same image, an entrypoint/command that cannot work
    "command": {
        "env": {"GREETING": "two"},
        "extra": 'entrypoint: ["/bin/sh", "-c"]\ncommand: ["echo broken; exit 7"]',
    },
}


@pytest.mark.docker
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_configuration_only_breakage_brings_the_old_configuration_back(
    project: ComposeProject, images: AppImages, breakage: str
) -> None:
    image = images.local("healthy")
    write_compose(project, services(app=service(image, env={"GREETING": "one"})))
    assert up(project)["revision"] == 1
    good = project.container("app")["Config"]

    bad = BREAKAGES[breakage]
    write_compose(project, services(app=service(image, env=bad["env"], extra=bad["extra"])))
    result = up(project, check=1)
    assert (result["outcome"], result["restored"]) == ("rolled_back", 1), result
    plan = {change["service"]: change for change in result["plan"]}
    assert plan["app"]["before"] == plan["app"]["after"]  # the image did not change...
    assert plan["app"]["config_changed"] is True  # ...only the configuration did
    assert result["failure"]["service"] == "app"
    assert "app" in {r["number"]: r for r in history(project)}[2]["reason"]

    restored = project.container("app")["Config"]
    env = container_env(project, "app")
    assert env["GREETING"] == "one"
    assert env["MODE"] == "healthy"  # the image's own value, not the broken override
    assert restored["Entrypoint"] == good["Entrypoint"] == ["/app/entrypoint.sh"]
    assert restored["Cmd"] == good["Cmd"]
    assert is_running(project, "app")
    assert statuses(project) == {1: "deployed", 2: "failed"}


# -- 11, 12. no good revision to go back to; --no-rollback ------------------------------------


@pytest.mark.docker
def test_first_deploy_that_fails_exits_3(project: ComposeProject, images: AppImages) -> None:
    write_compose(project, services(app=service(images.local("crash"))))
    result = up(project, check=3)
    assert (result["outcome"], result["revision"], result["restored"]) == ("unrestored", 1, None)
    assert result["failure"]["service"] == "app"
    assert statuses(project) == {1: "failed"}
    assert not (project.state_dir / "current.yaml").exists()


@pytest.mark.docker
def test_no_rollback_leaves_the_failed_revision_in_place(
    project: ComposeProject, images: AppImages
) -> None:
    write_compose(project, services(app=service(images.local("healthy"))))
    up(project)
    write_compose(project, services(app=service(images.local("crash"))))
    result = up(project, "--no-rollback", check=1)
    assert (result["outcome"], result["revision"], result["restored"]) == ("failed", 2, None)

    broken = project.container("app")
    assert broken["Image"] == images.id("crash")
    assert wait_for(lambda: project.container("app")["State"]["Status"] == "exited", 5)
    assert project.container("app")["Id"] == broken["Id"]  # not replaced afterwards
    revs = {r["number"]: r for r in history(project)}
    assert revs[2]["status"] == "failed" and revs[2]["restored_to"] is None
    assert (project.state_dir / "current.yaml").read_text() == overlay(project, 1).read_text()
