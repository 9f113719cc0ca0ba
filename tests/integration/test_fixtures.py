"""The integration fixtures do what they promise, against the real engine and plain compose.

Steady-state behaviours share one project (``zoo``) whose containers all start at once; the
behaviours that change over time (flaky, slow, metrics) each get their own project.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.compose_project import ComposeProject
from support.examples import copy_quickstart
from support.helpers import CommandError, docker, http_get, unique_name, wait_for
from support.registry import Registry
from support.testimages import VARIANTS, AppImages, find_busybox, is_static_elf

ZOO_VERSION = "zoo-1"


def _health(project: ComposeProject, service: str) -> str:
    return project.health(service)


def _exit_code(project: ComposeProject, service: str) -> int | None:
    state = project.container(service)["State"]
    return None if state["Status"] == "running" else int(state["ExitCode"])


def _metric(body: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert found, f"{name} not in metrics:\n{body}"
    return float(found.group(1))


def _image_id(ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


# -- steady states: one project, every container started at once ---------------------------


@pytest.fixture(scope="module")
def zoo(
    docker_engine: None, images: AppImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeProject]:
    project = ComposeProject(tmp_path_factory.mktemp("zoo"))
    project.write(
        f"""
        x-local: &local
          pull_policy: never
        services:
          healthy:
            <<: *local
            image: {images.local("healthy")}
            environment: {{VERSION: {ZOO_VERSION}}}
            ports: ["127.0.0.1::8080"]
          unhealthy:
            <<: *local
            image: {images.local("unhealthy")}
            ports: ["127.0.0.1::8080"]
          crash:
            <<: *local
            image: {images.local("crash")}
          configcrash:
            <<: *local
            image: {images.local("healthy")}
            environment: {{MODE: crash}}
          job-ok:
            <<: *local
            image: {images.local("exit0")}
          job-fail:
            <<: *local
            image: {images.local("exit1")}
          plain:
            <<: *local
            image: {images.local("nohealthcheck")}
            ports: ["127.0.0.1::8080"]
        """
    )
    try:
        project.compose("up", "--detach")
        yield project
    finally:
        project.cleanup()


@pytest.mark.docker
def test_healthy_turns_healthy_and_serves_its_version(zoo: ComposeProject) -> None:
    wait_for(lambda: _health(zoo, "healthy") == "healthy", 5, what="healthy to be healthy")
    answer = http_get(zoo.url("healthy"))
    assert (answer.status, answer.body) == (200, ZOO_VERSION)
    assert http_get(zoo.url("healthy", "/health")).status == 200
    assert http_get(zoo.url("healthy", "/cgi-bin/health")).status == 200
    published = zoo.container("healthy")["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {binding["HostIp"] for binding in published} == {"127.0.0.1"}


@pytest.mark.docker
def test_status_endpoint_answers_the_requested_code(zoo: ComposeProject) -> None:
    wait_for(lambda: http_get(zoo.url("healthy")).status == 200, 5, what="healthy to serve")
    for code in (200, 404, 500, 503):
        assert http_get(zoo.url("healthy", f"/cgi-bin/status?code={code}")).status == code


@pytest.mark.docker
def test_unhealthy_turns_unhealthy_but_serves(zoo: ComposeProject) -> None:
    wait_for(lambda: _health(zoo, "unhealthy") == "unhealthy", 6, what="unhealthy")
    assert http_get(zoo.url("unhealthy")).status == 200
    assert http_get(zoo.url("unhealthy", "/health")).status == 500


@pytest.mark.docker
def test_crash_exits_with_code_3(zoo: ComposeProject) -> None:
    assert wait_for(lambda: _exit_code(zoo, "crash"), 5, what="crash to exit") == 3


@pytest.mark.docker
def test_mode_from_compose_environment_breaks_a_healthy_image(zoo: ComposeProject) -> None:
    assert wait_for(lambda: _exit_code(zoo, "configcrash"), 5, what="configcrash") == 3


@pytest.mark.docker
def test_jobs_exit_0_and_1(zoo: ComposeProject) -> None:
    assert wait_for(lambda: _exit_code(zoo, "job-ok") is not None, 5)
    assert _exit_code(zoo, "job-ok") == 0
    assert wait_for(lambda: _exit_code(zoo, "job-fail"), 5) == 1


@pytest.mark.docker
def test_nohealthcheck_runs_without_health_state(zoo: ComposeProject) -> None:
    wait_for(lambda: http_get(zoo.url("plain")).status == 200, 5, what="plain to serve")
    assert _health(zoo, "plain") == "none"


# -- behaviours over time -------------------------------------------------------------------


@pytest.mark.docker
def test_flaky_goes_healthy_then_unhealthy(project: ComposeProject, images: AppImages) -> None:
    project.write(
        f"""
        services:
          app:
            image: {images.local("flaky")}
            pull_policy: never
            environment: {{FAIL_AFTER: "2.5"}}
        """
    )
    project.compose("up", "--detach")
    wait_for(lambda: _health(project, "app") == "healthy", 3, 0.05, what="flaky healthy")
    wait_for(lambda: _health(project, "app") == "unhealthy", 6, what="flaky unhealthy")


@pytest.mark.docker
def test_slow_stays_starting_then_turns_healthy(project: ComposeProject, images: AppImages) -> None:
    project.write(
        f"""
        services:
          app:
            image: {images.local("slow")}
            pull_policy: never
            environment: {{SLOW_START: "3"}}
        """
    )
    project.compose("up", "--detach")

    def probed() -> bool:
        health = project.container("app")["State"].get("Health") or {}
        return bool(health.get("Log"))

    wait_for(probed, 3, 0.05, what="the first health probe")
    statuses = [_health(project, "app")]

    def healthy() -> bool:
        statuses.append(_health(project, "app"))
        return statuses[-1] == "healthy"

    wait_for(healthy, 6, what="slow to turn healthy")
    # Failed probes inside the start period do not count: "starting", never "unhealthy".
    assert statuses[0] == "starting"
    assert set(statuses) == {"starting", "healthy"}


@pytest.mark.docker
def test_metrics_cross_their_threshold(project: ComposeProject, images: AppImages) -> None:
    project.write(
        f"""
        services:
          app:
            image: {images.local("healthy")}
            pull_policy: never
            environment: {{METRIC_AFTER: "2", METRIC_VALUE: "0.75"}}
            ports: ["127.0.0.1::8080"]
        """
    )
    project.compose("up", "--detach")
    url = project.url("app", "/cgi-bin/metrics")
    first = wait_for(lambda: http_get(url), 3, 0.05, what="metrics")
    assert first.status == 200
    assert first.headers.get("Content-Type", "").startswith("text/plain")
    assert _metric(first.body, "app_uptime_seconds") < 2
    assert _metric(first.body, "app_errors_ratio") == 0

    def crossed() -> float:
        return _metric(http_get(url).body, "app_errors_ratio")

    assert wait_for(crossed, 5, 0.2, what="app_errors_ratio to rise") == 0.75
    later = http_get(url).body
    assert _metric(later, "app_requests_total") > _metric(first.body, "app_requests_total")
    assert _metric(later, "app_errors_total") >= 1


# -- registry and images --------------------------------------------------------------------


@pytest.mark.docker
def test_variants_are_distinct_images(images: AppImages) -> None:
    ids = {images.id(variant) for variant in ("healthy", "unhealthy", "crash")}
    assert len(ids) == 3


@pytest.mark.docker
def test_moving_a_tag_changes_its_digest_and_pull_gets_the_latest(
    images: AppImages, registry: Registry
) -> None:
    repo = registry.new_repo()
    first = images.push("healthy", repo, "stable")
    second = images.push("unhealthy", repo, "stable")
    assert first.startswith(f"{registry.host}/{repo}@sha256:")
    assert second.startswith(f"{registry.host}/{repo}@sha256:")
    assert first != second
    assert registry.digest(repo, "stable") == second.split("@")[1]
    assert registry.tags(repo) == ["stable"]

    ref = registry.ref(repo, "stable")
    images.remove_local(ref)
    docker("pull", ref)
    assert _image_id(ref) == images.id("unhealthy")
    docker("pull", first)
    assert _image_id(first) == images.id("healthy")


@pytest.mark.docker
def test_registry_down_makes_pulls_fail_until_it_is_back(
    images: AppImages, registry: Registry
) -> None:
    repo = registry.new_repo()
    pinned = images.push("healthy", repo, "v1")
    ref = registry.ref(repo, "v1")
    with registry.down():
        assert not registry.is_ready()
        failed = docker("pull", ref, check=None, timeout=60)
        assert failed.returncode != 0, failed.stdout
    assert registry.is_ready()
    docker("pull", ref)
    assert registry.digest(repo, "v1") == pinned.split("@")[1]


@pytest.mark.docker
def test_build_fresh_gives_a_new_image_under_the_same_tag(images: AppImages) -> None:
    tag = f"{unique_name('crt-fresh')}:latest"
    first = images.build_fresh("healthy", tag)
    second = images.build_fresh("healthy", tag, version="v2")
    try:
        assert first != second
        assert _image_id(tag) == second
        env = docker("image", "inspect", "--format", "{{json .Config.Env}}", tag).stdout
        assert "VERSION=v2" in json.loads(env)
    finally:
        docker("image", "rm", tag, check=None)


@pytest.mark.docker
def test_project_cleanup_removes_exactly_its_own(images: AppImages, tmp_path: Path) -> None:
    doomed = ComposeProject(tmp_path)
    doomed.write(
        f"""
        services:
          app:
            image: {images.local("nohealthcheck")}
            pull_policy: never
            volumes: [data:/data]
        volumes:
          data: {{}}
        """
    )
    doomed.compose("up", "--detach")
    retention = f"{images.repository}:rollback-{doomed.name}-0123456789ab"
    docker("tag", images.local("nohealthcheck"), retention)
    (doomed.dir / "compose.yaml").write_text("services: [broken")  # down must still work
    doomed.cleanup()
    label = f"label=com.docker.compose.project={doomed.name}"
    assert doomed.containers() == []
    assert docker("volume", "ls", "-q", "--filter", label).stdout.split() == []
    assert docker("network", "ls", "-q", "--filter", label).stdout.split() == []
    assert docker("image", "inspect", retention, check=None).returncode != 0
    assert _image_id(images.local("nohealthcheck")) == images.id("nohealthcheck")


# -- the shipped example ---------------------------------------------------------------------


@pytest.mark.docker
def test_quickstart_builds_offline_v1_healthy_v2_unhealthy(project: ComposeProject) -> None:
    busybox = find_busybox()
    assert busybox is not None, "no static busybox"
    quickstart = copy_quickstart(project, busybox=busybox)
    project.compose("up", "--detach", "--build", "--wait", env={**quickstart.env, "VERSION": "v1"})
    assert http_get(quickstart.url).body == "hello from v1\n"
    published = project.container("web")["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {binding["HostIp"] for binding in published} == {"127.0.0.1"}
    broken = project.compose(
        "up", "--detach", "--build", "--wait", env={**quickstart.env, "VERSION": "v2"}, check=None
    )
    assert broken.returncode != 0
    assert "unhealthy" in broken.stdout + broken.stderr


# -- no engine needed -----------------------------------------------------------------------


def test_busybox_for_the_images_is_static() -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    assert is_static_elf(Path(busybox))
    assert not is_static_elf(Path("/bin/sh").resolve())


def test_wait_for_names_what_timed_out() -> None:
    with pytest.raises(TimeoutError, match="the moon"):
        wait_for(lambda: 0, 0.05, 0.01, what="the moon")


def test_http_get_refuses_anything_but_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        http_get("http://192.0.2.1/")


def test_command_error_shows_the_output() -> None:
    from support.helpers import run_command

    with pytest.raises(CommandError, match="expected 0"):
        run_command(["sh", "-c", "echo oops >&2; exit 4"])


def test_every_variant_is_documented() -> None:
    assert set(VARIANTS) >= {"healthy", "unhealthy", "crash", "flaky", "slow", "exit0", "exit1"}
