"""Issue 3 end to end: revisions with pinned digests, `up` that reverts by itself, `revert`,
`history`, `status`, `diff`, `pin`, `prune`, against the real engine and the loopback registry.

The helpers at the top only read what the CLI and the engine report; they never work around
the product.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from support.compose_project import ComposeProject
from support.helpers import docker, unique_name, wait_for
from support.registry import Registry
from support.testimages import AppImages

#: Gate settings for every test project: fast soak, bounded wait.
X_ROLLBACK = "x-rollback: {timeout: 60s, min_healthy: 1s}\n"
FAST = ("--min-healthy", "1s", "--timeout", "60s")


def write_compose(project: ComposeProject, services: str, *, extra: str = "") -> Path:
    """Write ``compose.yaml``: the x-rollback block, then ``services:`` (indented YAML)."""
    body = textwrap.indent(textwrap.dedent(services).strip("\n"), "  ")
    return project.write_file(
        "compose.yaml", X_ROLLBACK + "services:\n" + body + "\n" + textwrap.dedent(extra)
    )


def service(
    image: str,
    *,
    env: dict[str, str] | None = None,
    extra: str = "",
    pull_policy: str | None = "never",
) -> str:
    """One service body (to put under ``<name>:``), as YAML text."""
    lines = [f"image: {image}"]
    if pull_policy:
        lines.append(f"pull_policy: {pull_policy}")
    if env:
        lines.append("environment:")
        lines += [f"  {key}: {json.dumps(value)}" for key, value in env.items()]
    if extra:
        lines += textwrap.dedent(extra).strip("\n").splitlines()
    return "\n".join(lines)


def services(**defs: str) -> str:
    """``name: <body>`` blocks for ``write_compose``."""
    return "\n".join(f"{name}:\n" + textwrap.indent(body, "  ") for name, body in defs.items())


def cli(
    project: ComposeProject,
    *args: str,
    check: bool | int | None = True,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return project.run(*args, check=check, env=env, timeout=240)


def cli_json(
    project: ComposeProject,
    *args: str,
    check: bool | int | None = True,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run a ``--json`` command; return the process and its parsed stdout."""
    result = cli(project, *args, "--json", check=check, env=env)
    try:
        data = json.loads(result.stdout)
    except ValueError as error:
        raise AssertionError(
            f"not JSON from {args}: {error}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        ) from None
    return result, data


def up(project: ComposeProject, *args: str, check: bool | int | None = 0) -> Any:
    """``up --json`` with fast gates; returns the parsed result (exit code checked)."""
    _, data = cli_json(project, "up", *FAST, *args, check=check)
    return data


def history(project: ComposeProject) -> list[dict[str, Any]]:
    _, data = cli_json(project, "history")
    assert isinstance(data, list), data
    return data


def statuses(project: ComposeProject) -> dict[int, str]:
    return {r["number"]: r["status"] for r in history(project)}


def running_image(project: ComposeProject, service: str) -> str:
    """The image id the one container of ``service`` was created from (``docker inspect``)."""
    return str(project.container(service)["Image"])


def container_env(project: ComposeProject, service: str) -> dict[str, str]:
    env = project.container(service)["Config"]["Env"] or []
    return dict(item.split("=", 1) for item in env)


def is_running(project: ComposeProject, service: str) -> bool:
    return bool(project.container(service)["State"]["Running"])


def image_id(ref: str) -> str | None:
    found = docker("image", "inspect", "--format", "{{.Id}}", ref, check=None)
    return found.stdout.strip() if found.returncode == 0 else None


def retention_tag(repository: str, project: ComposeProject, image: str) -> str:
    """``<repo>:rollback-<project>-<12 hex of the image id>`` (the documented layout)."""
    return f"{repository}:rollback-{project.name}-{image.split(':', 1)[-1][:12]}"


def overlay(project: ComposeProject, number: int) -> Path:
    return project.state_dir / "revisions" / f"{number:04d}.yaml"


def fresh_image(
    images: AppImages, project: ComposeProject, version: str, variant: str = "healthy"
) -> tuple[str, str]:
    """A new, distinct local image ``<project>-img:<version>`` (removed with the project).

    Returns (reference, image id).
    """
    ref = f"{project.name}-img:{version}"
    return ref, images.build_fresh(variant, ref, version=version)


def sentinel(stem: str) -> str:
    return unique_name(f"crt-secret-{stem}", hex_chars=16)


def files_containing(root: Path, needle: str, *, skip: set[Path] = frozenset()) -> list[Path]:
    """Every file under ``root`` (recursively, hidden included) whose bytes hold ``needle``."""
    hits = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path not in skip and needle.encode() in path.read_bytes():
            hits.append(path)
    return hits


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
        since = docker("system", "info", "--format", "{{json .SystemTime}}").stdout.strip()
        cli_json(project, *args)
        until = docker("system", "info", "--format", "{{json .SystemTime}}").stdout.strip()
        out = docker("events", "--since", json.loads(since), "--until", json.loads(until),
                     "--filter", "type=image", "--filter", "event=tag",
                     "--format", "{{.Actor.Attributes.name}}").stdout
        return out.split()

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
    docker("image", "prune", "--force")  # dangling images only; never --all on a shared engine
    assert image_id(v1) == v1, "the retention tag must keep the old image through a prune"

    with registry.down():
        _, back = cli_json(project, "revert", *FAST)
        assert (back["outcome"], back["revision"]) == ("deployed", 3), back
        assert running_image(project, "app") == v1
        assert container_env(project, "app")["VERSION"] == "v1"

        docker("image", "prune", "--force")
        _, forth = cli_json(project, "revert", *FAST)  # back to revision 2, the newer release
        assert (forth["outcome"], forth["revision"]) == ("deployed", 4), forth
        assert running_image(project, "app") == v2

    revs = {r["number"]: r for r in history(project)}
    assert (revs[3]["restores"], revs[4]["restores"]) == (1, 2)
    assert statuses(project) == {1: "superseded", 2: "superseded", 3: "superseded", 4: "deployed"}


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


# -- 10. dry run and bad input change nothing --------------------------------------------------


def _snapshot(project: ComposeProject) -> dict[str, Any]:
    """What a command must leave alone: files of the store, containers, retention tags."""
    files = {}
    if (project.dir / ".rollback").exists():
        files = {
            str(p.relative_to(project.dir)): p.read_bytes()
            for p in sorted((project.dir / ".rollback").rglob("*"))
            if p.is_file()
        }
    containers = {
        c["Name"]: (c["Id"], c["Image"], c["State"]["Status"]) for c in project.containers()
    }
    refs = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return {
        "files": files,
        "containers": containers,
        "retention": sorted(r for r in refs if f"rollback-{project.name}" in r),
    }


@pytest.mark.docker
def test_dry_run_and_bad_input_change_nothing(
    project: ComposeProject, images: AppImages, registry: Registry
) -> None:
    healthy = images.local("healthy")
    write_compose(project, services(app=service(healthy)))
    dry = cli(project, "up", "--dry-run", *FAST)
    assert f"image: {images.id('healthy')}" in dry.stdout, dry.stdout
    assert not (project.dir / ".rollback").exists()
    assert project.containers() == []
    assert _snapshot(project)["retention"] == []

    up(project)
    before = _snapshot(project)
    other_ref, other = fresh_image(images, project, "next")
    write_compose(project, services(app=service(other_ref)))
    _, plan = cli_json(project, "up", "--dry-run", *FAST)
    assert plan["outcome"] == "dry_run" and plan["exit_code"] == 0, plan
    assert [(c["service"], c["before"], c["after"]) for c in plan["plan"]] == [
        ("app", images.id("healthy"), other)
    ]
    assert f"image: {other}" in plan["overlay"]
    assert _snapshot(project) == before

    unknown = cli(project, "up", "nosuchservice", *FAST, check=2)
    assert "nosuchservice" in unknown.stderr, unknown.stderr
    assert _snapshot(project) == before


@pytest.mark.docker
@pytest.mark.parametrize("pull", ["default", "never"])
def test_up_with_images_missing_everywhere_exits_2_naming_every_one(
    project: ComposeProject, images: AppImages, registry: Registry, pull: str
) -> None:
    healthy = images.local("healthy")
    write_compose(project, services(app=service(healthy)))
    up(project)
    before = _snapshot(project)

    # In the loopback registry's namespace, but never pushed: missing here and there.
    ghosts = [f"{registry.host}/{registry.new_repo('crt-missing')}:nope" for _ in range(2)]
    write_compose(
        project,
        services(
            app=service(healthy),
            ghost=service(ghosts[0], pull_policy=None),
            ghost2=service(ghosts[1], pull_policy=None),
        ),
    )
    flags = () if pull == "default" else ("--pull", pull)
    missing = cli(project, "up", *flags, *FAST, check=2)
    for ghost in ghosts:
        assert ghost in missing.stderr, missing.stderr  # every unpinnable image, named at once
    assert _snapshot(project) == before


@pytest.mark.docker
@pytest.mark.parametrize("mistake", ["unknown service", "missing image"])
def test_bad_input_on_a_fresh_project_leaves_no_file_behind(
    project: ComposeProject, images: AppImages, registry: Registry, mistake: str
) -> None:
    if mistake == "unknown service":
        write_compose(project, services(app=service(images.local("healthy"))))
        args: tuple[str, ...] = ("nosuchservice",)
    else:
        ghost = f"{registry.host}/{registry.new_repo('crt-missing')}:nope"
        write_compose(project, services(app=service(ghost)))
        args = ("--pull", "never")
    before = sorted(p.relative_to(project.dir) for p in project.dir.rglob("*"))
    cli(project, "up", *args, *FAST, check=2)
    after = sorted(p.relative_to(project.dir) for p in project.dir.rglob("*"))
    assert after == before  # exit 2 means nothing changed: not even a stray lock file
    assert project.containers() == []


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


# -- 13. no secret is ever written or printed ---------------------------------------------------


@pytest.mark.docker
def test_secrets_never_reach_a_file_or_json_output(
    project: ComposeProject, images: AppImages
) -> None:
    secret, other = sentinel("dotenv"), sentinel("envfile")
    dotenv = project.write_file(".env", f"SECRET={secret}\n")
    envfile = project.write_file("app.env", f"OTHER={other}\n")
    one_ref, _ = fresh_image(images, project, "v1")
    two_ref, _ = fresh_image(images, project, "v2")

    def compose(ref: str, **env: str) -> None:
        write_compose(
            project,
            services(
                app=service(ref, env={"SECRET": "${SECRET}", **env}, extra="env_file: [app.env]")
            ),
        )

    outputs: list[str] = []

    def record(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        outputs.extend([result.stdout, result.stderr])
        return result

    compose(one_ref)
    record(cli(project, "up", "--dry-run", "--json", *FAST))
    record(cli(project, "up", "--json", *FAST))
    env = container_env(project, "app")
    assert (env["SECRET"], env["OTHER"]) == (secret, other)
    assert "${SECRET}" in overlay(project, 1).read_text()  # kept as a reference
    compose(two_ref, GREETING="two")
    record(cli(project, "up", "--json", *FAST))
    compose(two_ref, MODE="crash")
    record(cli(project, "up", "--json", *FAST, check=1))
    record(cli(project, "revert", "--json", *FAST))
    record(cli(project, "pin", "--json"))
    for args in (("history",), ("status",), ("diff",), ("diff", "1", "3"), ("version",)):
        record(cli(project, *args, "--json"))
        record(cli(project, *args))
    record(cli(project, "prune", "--keep", "2", "--json"))

    env = container_env(project, "app")  # the restored container still has the secrets
    assert (env["SECRET"], env["OTHER"]) == (secret, other)
    assert project.state_dir.is_dir() and len(history(project)) >= 2
    for needle in (secret, other):
        assert files_containing(project.dir, needle, skip={dotenv, envfile}) == []
        assert not [out for out in outputs if needle in out]


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
