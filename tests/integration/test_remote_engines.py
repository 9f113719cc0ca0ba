"""Remote engines: every command works on the engine the user names, and only on it.

A second real ``dockerd`` of our own (``support.second_engine``) is the remote engine, named
through ``DOCKER_HOST=unix://…`` (our console entry) and through a docker context given
before ``compose`` (the real docker CLI, our shim, our argv splitter: ``support.docker_cli``).
On it: ``up``, a broken release (exit 1, the good one restored), ``revert --to``; the
revisions stay in the project's directory, and the default engine sees nothing of the
project: no container, network, volume, image tag or event (compared before and after).

An engine that is missing or refuses (a socket path that does not exist, a context that does
not exist, a context whose socket is gone, a TCP host that refuses) is exit 5 with the
endpoint named in the one-line message, and nothing changed.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import FAST, retention_tag
from robust_helpers import compose_text

from support.compose_project import ComposeProject
from support.docker_cli import DockerCli
from support.helpers import EventLog, describe, docker, free_port, unique_name
from support.registry import Registry
from support.second_engine import SecondEngine
from support.testimages import AppImages

pytestmark = pytest.mark.docker

LABEL = "com.docker.compose.project"


# -- what each engine holds of the project ----------------------------------------------------


def footprint(project: ComposeProject, *repos: str, engine: SecondEngine | None = None
              ) -> dict[str, list[str]]:
    """The project's containers, networks, volumes, and the tags of ``repos`` plus every tag
    naming the project, on ``engine`` (default: the default engine)."""
    run = engine.docker if engine is not None else docker
    label = f"label={LABEL}={project.name}"
    tags = run("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    return {
        "containers": sorted(run("ps", "--all", "--quiet", "--filter", label).stdout.split()),
        "networks": sorted(run("network", "ls", "--quiet", "--filter", label).stdout.split()),
        "volumes": sorted(run("volume", "ls", "--quiet", "--filter", label).stdout.split()),
        "tags": sorted(t for t in tags if project.name in t or t.rsplit(":", 1)[0] in repos),
    }


@pytest.fixture
def default_events() -> Iterator[EventLog]:
    """The default engine's events from the test's start (streamed: see ``EventLog``)."""
    with EventLog() as events:
        yield events


def events_naming(project: ComposeProject, events: EventLog, *, pulled: str = "") -> list[str]:
    """Every event of the default engine in ``events`` that names the project, and every
    pull of an image of the repository ``pulled``."""
    found = events.seen()
    return [line for line in found if project.name in line
            or (pulled and json.loads(line).get("Action") == "pull" and pulled in line)]


def remote_container(engine: SecondEngine, project: ComposeProject, service: str = "app"
                     ) -> dict[str, Any]:
    ids = engine.docker("ps", "--quiet", "--filter", f"label={LABEL}={project.name}",
                        "--filter", f"label=com.docker.compose.service={service}").stdout.split()
    assert len(ids) == 1, f"expected one running {service} container on the second engine: {ids}"
    found: list[dict[str, Any]] = json.loads(engine.docker("inspect", ids[0]).stdout)
    return found[0]


def greeting(container: dict[str, Any]) -> str:
    env = dict(item.split("=", 1) for item in container["Config"]["Env"] or [])
    return env.get("GREETING", "")


def as_json(done: subprocess.CompletedProcess[str], expected: int) -> Any:
    assert done.returncode == expected, describe(done, expected=expected)
    return json.loads(done.stdout)


# -- through DOCKER_HOST: local images, retention tags on the remote engine ---------------------


@pytest.fixture
def remote(project: ComposeProject, second_engine: SecondEngine) -> Iterator[SecondEngine]:
    """The second engine, with what the test's project left there removed after it."""
    yield second_engine
    label = f"label={LABEL}={project.name}"
    for kind, listing in (("container", ["ps", "--all", "--quiet", "--filter", label]),
                          ("network", ["network", "ls", "--quiet", "--filter", label])):
        found = second_engine.docker(*listing, check=None).stdout.split()
        if found:
            second_engine.docker(kind, "rm", "--force", *found, check=None)


def test_docker_host_up_broken_release_and_revert_on_the_second_engine(
        project: ComposeProject, images: AppImages, remote: SecondEngine,
        default_events: EventLog) -> None:
    second_engine = remote
    good, bad = images.local("healthy"), images.local("unhealthy")
    second_engine.load(good, bad)
    before = footprint(project, images.repository)
    env = second_engine.env

    def run(*args: str, expected: int = 0) -> Any:
        return as_json(project.run(*args, *FAST, "--json", env=env, timeout=240), expected)

    project.write_file("compose.yaml", compose_text(good, env={"GREETING": "one"}))
    assert run("up")["outcome"] == "deployed"
    project.write_file("compose.yaml", compose_text(good, env={"GREETING": "two"}))
    assert run("up")["revision"] == 2
    project.write_file("compose.yaml", compose_text(bad, env={"GREETING": "three"}))
    broken = run("up", expected=1)
    assert (broken["outcome"], broken["revision"], broken["restored"]) == \
        ("rolled_back", 3, 2), broken
    running = remote_container(second_engine, project)
    assert (running["Image"], greeting(running)) == (images.id("healthy"), "two")

    reverted = run("revert", "--to", "1")
    assert (reverted["outcome"], reverted["revision"]) == ("deployed", 4), reverted
    running = remote_container(second_engine, project)
    assert (running["Image"], greeting(running)) == (images.id("healthy"), "one")
    status = as_json(project.run("status", "--json", env=env), 0)
    assert (status["current"], status["drift"]) == (4, False), status

    # The retention tags are on the engine that runs the images, the revisions in the project.
    remote = footprint(project, images.repository, engine=second_engine)
    for image in (images.id("healthy"), images.id("unhealthy")):
        assert retention_tag(images.repository, project, image) in remote["tags"], remote
    assert sorted(p.name for p in (project.state_dir / "revisions").iterdir()) == \
        [f"{n:04d}.yaml" for n in (1, 2, 3, 4)]
    assert footprint(project, images.repository) == before
    assert events_naming(project, default_events) == []


# -- through a docker context before `compose`: registry images pulled by the remote engine ----


def test_context_flag_up_broken_release_and_revert_on_the_second_engine(
        project: ComposeProject, images: AppImages, registry: Registry,
        remote: SecondEngine, docker_cli: DockerCli, default_events: EventLog) -> None:
    second_engine = remote
    repo = registry.new_repo()
    good_digest = images.push("healthy", repo, "1").split("@", 1)[1]
    ref = registry.ref(repo, "1")
    # Built now if this worker has not yet: the footprint must show the project's doing only.
    images.local("unhealthy")
    before = footprint(project, images.repository)

    with second_engine.context(env=docker_cli.env) as name:
        def run(*args: str, expected: int = 0) -> Any:
            done = docker_cli.run(["--context", name, "compose", "-p", project.name,
                                   "rollback", *args, "--json"], cwd=project.dir)
            return as_json(done, expected)

        pulled = compose_text(ref, env={"GREETING": "one"}).replace("pull_policy: never",
                                                                     "pull_policy: missing")
        project.write_file("compose.yaml", pulled)
        assert run("up", *FAST)["outcome"] == "deployed"
        project.write_file("compose.yaml", pulled.replace('"one"', '"two"'))
        assert run("up", *FAST)["revision"] == 2
        images.push("unhealthy", repo, "1")  # the tag moves to a broken release
        broken = run("up", "--pull", "always", *FAST, expected=1)
        assert (broken["outcome"], broken["restored"]) == ("rolled_back", 2), broken
        running = remote_container(second_engine, project)
        assert greeting(running) == "two"
        assert f"{registry.host}/{repo}@{good_digest}" in \
            second_engine.docker("inspect", running["Image"]).stdout

        reverted = run("revert", "--to", "1", *FAST)
        assert (reverted["outcome"], reverted["revision"]) == ("deployed", 4), reverted
        assert greeting(remote_container(second_engine, project)) == "one"

        # DOCKER_CONTEXT and -H name the same engine: status sees what runs there.
        for env, head in (({"DOCKER_CONTEXT": name}, []), ({}, ["-H", second_engine.host])):
            done = docker_cli.run([*head, "compose", "-p", project.name, "rollback", "status",
                                   "--json"], cwd=project.dir, env=env)
            status = as_json(done, 0)
            assert (status["current"], status["drift"]) == (4, False), status
            assert status["services"][0]["containers"], status

    assert footprint(project, images.repository) == before
    assert events_naming(project, default_events, pulled=f"{registry.host}/{repo}") == []


# -- a missing or unreachable engine: exit 5, the endpoint named, nothing changed --------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _containers(project: ComposeProject) -> list[tuple[str, str, str]]:
    """Which containers exist, from which image, since when (health logs change anyway)."""
    return [(c["Id"], c["Image"], c["State"]["StartedAt"]) for c in project.containers()]


@pytest.mark.parametrize("command", [("up", *FAST), ("revert", "--to", "1", *FAST),
                                     ("status",)], ids=["up", "revert", "status"])
def test_an_unreachable_engine_is_exit_5_naming_the_endpoint(
        project: ComposeProject, images: AppImages, docker_cli: DockerCli,
        tmp_path: Path, command: tuple[str, ...]) -> None:
    for release in ("one", "two", "three"):  # two revisions; the third is the next `up`
        project.write_file("compose.yaml", compose_text(images.local("healthy"),
                                                        env={"GREETING": release}))
        if release != "three":
            assert project.run("up", *FAST).returncode == 0
    gone = f"unix://{tmp_path}/no-engine/docker.sock"
    refused = f"tcp://127.0.0.1:{free_port()}"
    missing_context = unique_name("crt-nope")
    dead = unique_name("crt-ctx")
    subprocess.run(["docker", "context", "create", dead, "--docker",
                    f"host=unix://{tmp_path}/dead.sock"], env=docker_cli.env, check=True,
                   capture_output=True)
    cases = [  # docker globals, environment, what the message must name
        ([], {"DOCKER_HOST": gone}, f"the Docker engine at {gone} is unreachable"),
        (["-H", refused], {}, f"the Docker engine at {refused} is unreachable"),
        (["--context", missing_context], {},
         f"the docker context '{missing_context}' does not exist"),
        ([], {"DOCKER_CONTEXT": missing_context},
         f"the docker context '{missing_context}' does not exist"),
        (["-c", dead], {}, f"the Docker engine at unix://{tmp_path}/dead.sock is unreachable"),
    ]
    store = _snapshot(project.state_dir)
    running = _containers(project)
    try:
        for head, env, named in cases:
            done = docker_cli.run([*head, "compose", "-p", project.name, "rollback",
                                   *command], cwd=project.dir, env=env)
            assert done.returncode == 5, describe(done, expected=5)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(
                f"docker compose rollback: {named}; "), describe(done)
            assert _snapshot(project.state_dir) == store
            assert _containers(project) == running
    finally:
        subprocess.run(["docker", "context", "rm", "--force", dead], env=docker_cli.env,
                       check=False, capture_output=True)


# -- hooks, exec gates and in-service probes use the same engine --------------------------------


def test_hooks_exec_gates_and_service_probes_reach_the_engine_named_before_compose(
        project: ComposeProject, images: AppImages, remote: SecondEngine,
        docker_cli: DockerCli) -> None:
    """``-H`` before ``compose`` is not in the environment the hook inherits from the shell:
    the tool passes it on (as ``DOCKER_HOST``), so the hook's ``docker ps`` sees the release.
    The exec gate and the ``from: service`` probe run ``docker exec`` in containers that only
    the second engine has: they pass only if they are sent there."""
    remote.load(images.local("healthy"))
    listing = f"docker ps --quiet --no-trunc --filter label={LABEL}={project.name}"
    top = ("x-rollback:\n  timeout: 60s\n  min_healthy: 1s\n  hooks:\n"
           f"    post_up: '{listing} > hook.out'\n")
    gates = """
        x-rollback:
          gates:
            - exec: ["sh", "-c", "test -x /app/entrypoint.sh"]
            - http: http://127.0.0.1:8080/health
              from: service
        """
    project.write_file("compose.yaml", compose_text(images.local("healthy"), top=top,
                                                    extra=gates))
    done = docker_cli.run(["-H", remote.host, "compose", "-p", project.name, "rollback", "up",
                           "--json"], cwd=project.dir)
    assert as_json(done, 0)["outcome"] == "deployed"
    running = remote_container(remote, project)["Id"]
    assert (project.dir / "hook.out").read_text().split() == [running]
