"""The integration fixtures do what they promise, against the real engine and plain compose.

Steady-state behaviours share one project (``zoo``) whose containers all start at once; the
behaviours that change over time (flaky, slow, metrics) share another (``timeline``), sampled
in the background from its start, so their waits overlap too.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.compose_project import ComposeProject
from support.examples import copy_quickstart
from support.helpers import CommandError, docker, http_get, unique_name, wait_for
from support.prometheus import Prometheus
from support.registry import Registry
from support.testimages import VARIANTS, AppImages, find_busybox, is_static_elf

ZOO_VERSION = "zoo-1"
#: The tests of one module-scoped project share one xdist worker, so the project (and, for
#: the zoo, the build of every variant) is made once, not once on each worker (~20 s of setup
#: and ~10 s of teardown saved in a 4-worker run).
ZOO = pytest.mark.xdist_group("fixtures-zoo")
TIMELINE = pytest.mark.xdist_group("fixtures-timeline")


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
    images.build_all()  # in parallel; the timeline fixture uses the rest
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
          metrics:
            <<: *local
            image: {images.local("healthy")}
            environment: {{METRIC_AFTER: "3", METRIC_VALUE: "0.5"}}
            ports: ["127.0.0.1::8080"]
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


@ZOO
@pytest.mark.docker
def test_healthy_turns_healthy_and_serves_its_version(zoo: ComposeProject) -> None:
    wait_for(lambda: _health(zoo, "healthy") == "healthy", 5, what="healthy to be healthy")
    answer = http_get(zoo.url("healthy"))
    assert (answer.status, answer.body) == (200, ZOO_VERSION)
    assert http_get(zoo.url("healthy", "/health")).status == 200
    assert http_get(zoo.url("healthy", "/cgi-bin/health")).status == 200
    published = zoo.container("healthy")["NetworkSettings"]["Ports"]["8080/tcp"]
    assert {binding["HostIp"] for binding in published} == {"127.0.0.1"}


@ZOO
@pytest.mark.docker
def test_status_endpoint_answers_the_requested_code(zoo: ComposeProject) -> None:
    wait_for(lambda: http_get(zoo.url("healthy")).status == 200, 5, what="healthy to serve")
    for code in (200, 404, 500, 503):
        assert http_get(zoo.url("healthy", f"/cgi-bin/status?code={code}")).status == code


@ZOO
@pytest.mark.docker
def test_unhealthy_turns_unhealthy_but_serves(zoo: ComposeProject) -> None:
    wait_for(lambda: _health(zoo, "unhealthy") == "unhealthy", 6, what="unhealthy")
    assert http_get(zoo.url("unhealthy")).status == 200
    assert http_get(zoo.url("unhealthy", "/health")).status == 500


@ZOO
@pytest.mark.docker
def test_crash_exits_with_code_3(zoo: ComposeProject) -> None:
    assert wait_for(lambda: _exit_code(zoo, "crash"), 5, what="crash to exit") == 3


@ZOO
@pytest.mark.docker
def test_mode_from_compose_environment_breaks_a_healthy_image(zoo: ComposeProject) -> None:
    assert wait_for(lambda: _exit_code(zoo, "configcrash"), 5, what="configcrash") == 3


@ZOO
@pytest.mark.docker
def test_jobs_exit_0_and_1(zoo: ComposeProject) -> None:
    assert wait_for(lambda: _exit_code(zoo, "job-ok") is not None, 5)
    assert _exit_code(zoo, "job-ok") == 0
    assert wait_for(lambda: _exit_code(zoo, "job-fail"), 5) == 1


@ZOO
@pytest.mark.docker
def test_nohealthcheck_runs_without_health_state(zoo: ComposeProject) -> None:
    wait_for(lambda: http_get(zoo.url("plain")).status == 200, 5, what="plain to serve")
    assert _health(zoo, "plain") == "none"


# -- behaviours over time: one project, sampled in the background from its start -------------

_HEALTH_STATES = {"starting", "healthy", "unhealthy"}


class Timeline:
    """Samples health states and the metrics of a project from its start, in a thread, so
    that every test sees the early transitions even when it runs seconds later."""

    def __init__(self, project: ComposeProject, services: list[str], metrics_url: str) -> None:
        self.project = project
        self.metrics_url = metrics_url
        self.states: dict[str, list[str]] = {service: [] for service in services}
        #: (uptime, app_errors_ratio) of each scrape.
        self.metrics: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def health(self, service: str) -> list[str]:
        """The distinct health states ``service`` went through, in order."""
        return [state for state in self.states[service] if state in _HEALTH_STATES]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for service, seen in self.states.items():
                try:
                    state = self.project.health(service)
                except AssertionError:  # not created yet, or being inspected while it changes
                    continue
                if not seen or seen[-1] != state:
                    seen.append(state)
            answer = http_get(self.metrics_url, timeout=1.0)
            if answer.status == 200:
                self.metrics.append(
                    (
                        _metric(answer.body, "app_uptime_seconds"),
                        _metric(answer.body, "app_errors_ratio"),
                    )
                )
            self._stop.wait(0.1)


@pytest.fixture(scope="module")
def timeline(
    docker_engine: None, images: AppImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Timeline]:
    project = ComposeProject(tmp_path_factory.mktemp("timeline"))
    project.write(
        f"""
        x-local: &local
          pull_policy: never
        services:
          flaky:
            <<: *local
            image: {images.local("flaky")}
            environment: {{FAIL_AFTER: "2.5"}}
          slow:
            <<: *local
            image: {images.local("slow")}
            environment: {{SLOW_START: "3"}}
          metrics:
            <<: *local
            image: {images.local("healthy")}
            environment: {{METRIC_AFTER: "2", METRIC_VALUE: "0.75"}}
            ports: ["127.0.0.1::8080"]
        """
    )
    try:
        project.compose("up", "--detach")
        sampler = Timeline(project, ["flaky", "slow"], project.url("metrics", "/cgi-bin/metrics"))
        try:
            yield sampler
        finally:
            sampler.close()
    finally:
        project.cleanup()


@TIMELINE
@pytest.mark.docker
def test_flaky_goes_healthy_then_unhealthy(timeline: Timeline) -> None:
    wait_for(lambda: "unhealthy" in timeline.health("flaky"), 8, what="flaky unhealthy")
    seen = timeline.health("flaky")
    assert "healthy" in seen, seen
    assert seen.index("healthy") < seen.index("unhealthy"), seen


@TIMELINE
@pytest.mark.docker
def test_slow_stays_starting_then_turns_healthy(timeline: Timeline) -> None:
    wait_for(lambda: "healthy" in timeline.health("slow"), 8, what="slow healthy")
    # Failed probes inside the start period do not count: "starting", never "unhealthy".
    assert timeline.health("slow") == ["starting", "healthy"]


@TIMELINE
@pytest.mark.docker
def test_metrics_cross_their_threshold(timeline: Timeline) -> None:
    wait_for(
        lambda: any(ratio == 0.75 for _, ratio in timeline.metrics), 8, what="the ratio to rise"
    )
    before = [uptime for uptime, ratio in timeline.metrics if ratio == 0]
    after = [uptime for uptime, ratio in timeline.metrics if ratio == 0.75]
    assert before, "no scrape before the threshold"
    assert max(before) < 2.2 and min(after) >= 2
    first = http_get(timeline.metrics_url)
    later = http_get(timeline.metrics_url)
    assert first.headers.get("Content-Type", "").startswith("text/plain")
    assert _metric(later.body, "app_requests_total") > _metric(first.body, "app_requests_total")
    assert _metric(later.body, "app_errors_total") > _metric(first.body, "app_errors_total")


@ZOO
@pytest.mark.docker
def test_prometheus_scrapes_the_app_and_sees_the_ratio_rise(
    zoo: ComposeProject, prometheus: Prometheus
) -> None:
    target = prometheus.scrape(f"127.0.0.1:{zoo.port('metrics')}")
    try:
        prometheus.wait_scraped(target)
        ratio = f'app_errors_ratio{{instance_name="{target}"}}'
        assert wait_for(lambda: prometheus.value(ratio) == 0.5, 10, 0.2, what="ratio 0.5")
        assert prometheus.value(f'app_info{{instance_name="{target}",mode="healthy"}}') == 1
    finally:
        prometheus.forget(target)


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
        assert {"VERSION=v2", "CRT_VARIANT=healthy"} <= set(json.loads(env))
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
