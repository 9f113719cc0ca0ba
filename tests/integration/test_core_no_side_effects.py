"""Issue 3 end to end: what must change nothing and leak nothing: ``--dry-run`` and bad input
leave the store, the containers and the tags alone; no secret reaches a file or an output.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from core_helpers import (
    FAST,
    cli,
    cli_json,
    container_env,
    files_containing,
    fresh_image,
    history,
    overlay,
    sentinel,
    service,
    services,
    up,
    write_compose,
)

from support.compose_project import ComposeProject
from support.helpers import docker
from support.registry import Registry
from support.testimages import AppImages

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
