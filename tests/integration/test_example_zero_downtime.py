"""``examples/zero-downtime`` runs offline as shipped: its script builds both images FROM
scratch, our CLI deploys two replicas behind its HAProxy, the load through the proxy loses
nothing in steady state and both replicas answer; a broken v2 is rolled back.

The load is counted in a test of its own (serial: nothing else may run beside it); the build,
the deploys and the rollback, which no load decides, run in the parallel phase."""

from __future__ import annotations

import pytest

from support.compose_project import ComposeProject
from support.examples import EXAMPLES_DIR, ZeroDowntime, copy_zero_downtime
from support.haproxy import CHECKED_FIRST, HaproxyImage, parse_stats
from support.helpers import clean_env, docker, http_get, run_command, wait_for
from support.load import Load
from support.testimages import AppImages

STATS = "/haproxy-stats;csv"


def test_the_example_ships_the_rigs_lua_task() -> None:
    """The proxy of the example and of the tests behave alike (same Lua, same checks)."""
    example = EXAMPLES_DIR / "zero-downtime" / "lb"
    assert (example / CHECKED_FIRST.name).read_text() == CHECKED_FIRST.read_text()
    config = (example / "haproxy.cfg").read_text()
    expected = ["inter 500ms fastinter 250ms rise 2 fall 2", "retry-on all-retryable-errors"]
    expected += ["init-addr none", "nameserver dns 127.0.0.11:53", "lua-load"]
    assert [line for line in expected if line not in config] == []


def _up_servers(url: str) -> set[str]:
    answer = http_get(url)
    if answer.status != 200:
        return set()
    servers = [server for server in parse_stats(answer.body) if server.in_rotation]
    # Settled: every server in rotation at full health.
    return {s.address for s in servers} if all(s.up for s in servers) else set()


def _wait_up(url: str, count: int) -> set[str]:
    wait_for(lambda: len(_up_servers(url)) == count, 20, what=f"{count} servers UP in HAProxy")
    return _up_servers(url)


def _build_and_deploy_v1(project: ComposeProject, images: AppImages, *versions: str,
                         up: tuple[str, ...] = ()) -> ZeroDowntime:
    """The example copied into ``project``, its images built by its own script (lb and these
    web versions), and v1 deployed by our CLI with the example's settings (plus ``up``)."""
    example = copy_zero_downtime(project, busybox=images.busybox)
    run_command([str(example.build_images), *versions], cwd=example.dir,
                env=clean_env(example.env))
    project.run("up", "-m", "v1", *up, env=example.env, check=0)
    return example


@pytest.mark.docker
def test_zero_downtime_example_deploys_behind_its_proxy(
    project: ComposeProject, images: AppImages, haproxy_image: HaproxyImage
) -> None:
    """As shipped: both images built, v1 behind the proxy on loopback only, a broken v2 rolled
    back by the health gate. (No load here: what users see is the serial test below.)"""
    # haproxy_image: only for its check that haproxy is installed (fails under CI if not).
    example = _build_and_deploy_v1(project, images, "v1", "v2")
    lb = f"{project.name}-lb:2.6"
    check = ["run", "--rm", "--network", "none", "--entrypoint", "/usr/sbin/haproxy", lb, "-v"]
    version = docker(*check).stdout
    assert version.startswith("HAProxy version 2.6"), version
    assert docker("image", "inspect", "--format", "{{len .RootFS.Layers}}", lb).stdout == "1\n"

    published = project.container("lb")["NetworkSettings"]["Ports"]
    assert {b["HostIp"] for ports in published.values() for b in ports or []} == {"127.0.0.1"}
    for web in project.containers("web"):  # exposed, never published
        assert not any((web["NetworkSettings"]["Ports"] or {}).values()), web["Name"]
    _wait_up(example.url(STATS), 2)

    broken = project.run("up", "-m", "v2 (broken)", env={**example.env, "VERSION": "v2"})
    assert broken.returncode == 1, broken.stderr
    _wait_up(example.url(STATS), 2)
    assert http_get(example.url()).body == "hello from v1\n"


@pytest.mark.serial  # counts failed requests under load
@pytest.mark.docker
def test_zero_downtime_example_serves_every_request_behind_its_proxy(
    project: ComposeProject, images: AppImages, haproxy_image: HaproxyImage
) -> None:
    """Under load through the example's proxy, nothing fails and both replicas answer. Only
    this part runs alone: the deploy of v1 is set-up here (no soak: the test above deploys
    with the example's own 3 s), the load is what is measured."""
    example = _build_and_deploy_v1(project, images, "v1", up=("--min-healthy", "0"))
    replicas = _wait_up(example.url(STATS), 2)
    with Load(example.url(), max_seconds=30, server_header="X-Served-By") as load:
        steady = load.wait_requests(40)
    assert steady.failed == 0, steady.describe()
    assert steady.by_release == {"hello from v1": steady.total}
    assert {server.split()[-1] for server in steady.by_server} == replicas
