"""Issue 3 end to end: images that only this machine holds. A local image rebuilt under the
same tag, the retention tags that keep every revision's image, and a revert with the registry
down and the user's tags gone.
"""

from __future__ import annotations

import re

import pytest
from core_helpers import (
    FAST,
    cli_json,
    container_env,
    fresh_image,
    history,
    image_id,
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
from support.helpers import EventLog, docker
from support.registry import Registry
from support.testimages import AppImages

# -- 4. a locally built image rebuilt under the same tag ---------------------------------------


@pytest.mark.docker
def test_rebuilt_local_image_then_revert_runs_the_old_image_id(
    project: ComposeProject, images: AppImages
) -> None:
    base = images.local("healthy")

    def dockerfile(version: str) -> None:
        project.write_file(
            "app/Dockerfile",
            f"FROM {base}\nENV VERSION={version}\n"
            f"LABEL org.compose-rollback.test.build={version}\n",
        )

    write_compose(project, services(app="build: {context: ./app}"))
    built = f"{project.name}-app"  # compose's name for the image of a build-only service
    dockerfile("build-one")
    assert up(project, "--build")["revision"] == 1
    first = image_id(built)
    assert first and running_image(project, "app") == first
    text = overlay(project, 1).read_text()
    assert f"image: {first}" in text and "pull_policy: never" in text
    assert not re.search(r"^\s*build:(?!\s*!reset)", text, re.MULTILINE), text  # never rebuilt

    dockerfile("build-two")
    assert up(project, "--build")["revision"] == 2
    second = image_id(built)
    assert second and second != first
    assert running_image(project, "app") == second

    _, reverted = cli_json(project, "revert", *FAST)
    assert (reverted["outcome"], reverted["revision"]) == ("deployed", 3), reverted
    assert running_image(project, "app") == first
    assert container_env(project, "app")["VERSION"] == "build-one"
    assert image_id(built) == second  # revert neither rebuilt nor retagged anything
    assert image_id(retention_tag(built, project, first)) == first
    revs = {r["number"]: r for r in history(project)}
    assert (revs[3]["kind"], revs[3]["restores"], revs[3]["status"]) == ("revert", 1, "deployed")
    assert revs[1]["pins"]["app"]["local"] is True
    assert revs[1]["pins"]["app"]["retention"] == retention_tag(built, project, first)


@pytest.mark.docker
def test_retention_tags_are_made_once_and_remade_when_removed(
    project: ComposeProject, images: AppImages
) -> None:
    """The image's own tags (read by the pinning inspection) say whether its retention tag
    exists: a second up of the same image tags nothing; one removed by hand comes back."""
    repository, _ = images.local("healthy").rsplit(":", 1)
    write_compose(project, services(app=service(images.local("healthy"),
                                                env={"RELEASE": "1"})))
    assert up(project)["revision"] == 1
    keep = retention_tag(repository, project, images.id("healthy"))
    assert image_id(keep) == images.id("healthy")

    def tag_events_during(*args: str) -> list[str]:
        with EventLog("type=image", "event=tag", fmt="{{.Actor.Attributes.name}}") as events:
            cli_json(project, *args)
        # The engine is shared (other sessions build and tag at the same time): only tags of
        # this test's image repository are ours to count.
        return [name for name in events.lines if name.startswith(f"{repository}:")]

    write_compose(project, services(app=service(images.local("healthy"),
                                                env={"RELEASE": "2"})))
    assert tag_events_during("up", *FAST) == []
    docker("image", "rm", "--no-prune", keep)
    write_compose(project, services(app=service(images.local("healthy"),
                                                env={"RELEASE": "3"})))
    assert tag_events_during("up", *FAST) == [keep]
    assert image_id(keep) == images.id("healthy")
    docker("image", "rm", "--no-prune", keep)
    assert tag_events_during("revert", *FAST) == [keep]  # back to revision 2: same image
    assert image_id(keep) == images.id("healthy")


# -- 5. revert with the registry stopped --------------------------------------------------------


@pytest.mark.docker
def test_revert_works_with_the_registry_down_and_local_tags_gone(
    project: ComposeProject, images: AppImages, registry: Registry
) -> None:
    repo = registry.new_repo()
    ref = registry.ref(repo, "latest")
    v1_ref, v1 = fresh_image(images, project, "v1")
    v2_ref, v2 = fresh_image(images, project, "v2")
    images.push(v1_ref, repo, "latest")
    write_compose(project, services(app=service(ref, pull_policy=None)))
    assert up(project)["revision"] == 1
    assert running_image(project, "app") == v1

    images.push(v2_ref, repo, "latest")  # a new release under the same tag
    images.remove_local(ref)
    assert up(project, "--pull", "always")["revision"] == 2  # pulls the new release
    assert running_image(project, "app") == v2

    # Nothing but the tool's own retention tags keeps either image now.
    for tag in (v1_ref, v2_ref, ref):
        docker("image", "rm", tag)
    assert image_id(ref) is None
    images.prune_dangling()  # this session's dangling images: never engine-wide
    assert image_id(v1) == v1, "the retention tag must keep the old image through a prune"

    with registry.down():
        _, back = cli_json(project, "revert", *FAST)
        assert (back["outcome"], back["revision"]) == ("deployed", 3), back
        assert running_image(project, "app") == v1
        assert container_env(project, "app")["VERSION"] == "v1"

        images.prune_dangling()
        _, forth = cli_json(project, "revert", *FAST)  # back to revision 2, the newer release
        assert (forth["outcome"], forth["revision"]) == ("deployed", 4), forth
        assert running_image(project, "app") == v2

    revs = {r["number"]: r for r in history(project)}
    assert (revs[3]["restores"], revs[4]["restores"]) == (1, 2)
    assert statuses(project) == {1: "superseded", 2: "superseded", 3: "superseded", 4: "deployed"}
