"""Gate specs, container verdicts, probes against loopback servers, hooks, interpolation."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from compose_rollback.dockerdata import ContainerState, Event
from compose_rollback.errors import BadInput, SettingsError
from compose_rollback.gates.container import _healthy_from_events, judge
from compose_rollback.gates.probes import (
    Outcome,
    ProbeRunner,
    probe_http,
    probe_prometheus,
    probe_tcp,
)
from compose_rollback.gates.specs import GateSpec, parse_gate, parse_hooks
from compose_rollback.hooks import hook_env, notify, payload, run_hook
from compose_rollback.interpolate import interpolate, read_env_file


def _state(**kw: object) -> ContainerState:
    base: dict[str, object] = {"id": "c1", "name": "p-web-1", "service": "web",
                               "status": "running", "exit_code": 0, "health": "healthy",
                               "restart_count": 0, "image_id": "sha256:x", "oom_killed": False,
                               "oneoff": False}
    base.update(kw)
    return ContainerState(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "oneshot", "verdict"), [
    ({}, False, "good"),
    ({"health": None}, False, "good"),
    ({"health": "starting"}, False, "wait"),
    ({"health": "unhealthy", "health_output": "500"}, False, "fail"),
    ({"status": "exited", "exit_code": 0}, False, "fail"),
    ({"status": "restarting"}, False, "fail"),
    ({"restart_count": 1}, False, "fail"),
    ({"oom_killed": True}, False, "fail"),
    ({"status": "created"}, False, "wait"),
    ({"status": "exited", "exit_code": 0}, True, "good"),
    ({"status": "exited", "exit_code": 2}, True, "fail"),
    ({"status": "running"}, True, "wait"),
])
def test_container_verdicts(kw: dict[str, object], oneshot: bool, verdict: str) -> None:
    assert judge(_state(**kw), restarts_before=0, oneshot=oneshot)[0] == verdict


def test_health_events_alone_update_the_last_inspection_and_anything_else_asks_docker() -> None:
    web, db = _state(health="starting"), _state(id="c2", name="p-db-1", service="db")
    last = {web.id: web, db.id: db}

    def event(action: str, container: str = "c1") -> Event:
        return Event(action=action, container_id=container, service="web", time_nano=1)

    now = _healthy_from_events(last, [event("health_status: healthy")])
    assert now is not None
    assert {c.id: c.health for c in now} == {"c1": "healthy", "c2": "healthy"}
    assert last["c1"].health == "starting"  # the last inspection itself is left as it was
    for events in ([], [event("health_status: unhealthy")], [event("die")],
                   [event("health_status: healthy"), event("restart")],
                   [event("health_status: healthy", "c9")]):
        assert _healthy_from_events(last, events) is None, events
    assert _healthy_from_events({}, [event("health_status: healthy")]) is None


def test_restart_counts_compare_with_before_the_deploy() -> None:
    assert judge(_state(restart_count=2), restarts_before=2)[0] == "good"


@pytest.mark.parametrize(("raw", "path"), [
    ({"smtp": "x"}, "g"),
    ({"http": "http://a/", "tcp": "a:1"}, "g"),
    ({"http": "not-a-url"}, "g.http"),
    ({"http": "http://a/", "status": 99}, "g.status"),
    ({"http": "http://a/", "status": "300-200"}, "g.status"),
    ({"http": "http://a/", "body_regex": "("}, "g.body_regex"),
    ({"http": "http://a/", "colour": 1}, "g.colour"),
    ({"tcp": "nohost"}, "g.tcp"),
    ({"exec": []}, "g.exec"),
    ({"exec": "true"}, "g.service"),
    ({"prometheus": "http://p/"}, "g.query"),
    ({"prometheus": "http://p/", "query": "up", "below": "x"}, "g.below"),
    ({"http": "http://a/", "successes": 0}, "g.successes"),
    ({"http": "http://a/", "interval": "soon"}, "g.interval"),
    ({"http": "http://a/", "from": "moon"}, "g.from"),
    ("http://a/", "g"),
])
def test_bad_gate_settings_name_their_path(raw: object, path: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_gate(raw, path="g", service=None)
    assert caught.value.path == path


def test_gate_defaults() -> None:
    spec = parse_gate({"prometheus": "http://127.0.0.1:9090", "query": "up"}, path="g",
                      service=None)
    assert spec.failures == 1  # a metric gate must hold for the whole soak
    http = parse_gate({"http": "http://a/", "status": "200-204"}, path="g", service="web")
    assert (http.status, http.failures, http.service) == ((200, 204), 3, "web")


@pytest.mark.parametrize(("raw", "path"), [
    ({"pre_upp": "true"}, "h.pre_upp"), ({"webhook": "ftp://x"}, "h.webhook"),
    ({"post_up": ""}, "h.post_up"), ("true", "h"),
])
def test_bad_hooks(raw: object, path: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_hooks(raw, path="h")
    assert caught.value.path == path


class _Handler(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[bytes]] = []

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/query"):
            value = "0.5" if "errors" in self.path else "0.01"
            body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {}, "value": [1, value]}]}}).encode()
            code = 200
        elif self.path == "/empty/api/v1/query?query=up":
            body, code = b'{"status":"success","data":{"resultType":"vector","result":[]}}', 200
        else:
            code = 500 if self.path == "/fail" else 200
            body = b"hello ok"
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Handler.received.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _http(url: str, **kw: object) -> GateSpec:
    return GateSpec(kind="http", target=url, path="g", **kw)  # type: ignore[arg-type]


def test_http_probe(server: str) -> None:
    assert probe_http(_http(f"{server}/")).ok
    assert probe_http(_http(f"{server}/", body="ok")).ok
    assert not probe_http(_http(f"{server}/", body_regex="^nope")).ok
    failed = probe_http(_http(f"{server}/fail"))
    assert not failed.ok and "returned 500" in failed.detail
    assert probe_http(_http(f"{server}/fail", status=(500, 500))).ok


def test_tcp_probe(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    assert probe_tcp(GateSpec(kind="tcp", target=f"127.0.0.1:{port}", path="g")).ok
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        free = unused.getsockname()[1]
    assert not probe_tcp(GateSpec(kind="tcp", target=f"127.0.0.1:{free}", path="g")).ok


def test_prometheus_probe(server: str) -> None:
    def spec(url: str, query: str, **kw: object) -> GateSpec:
        return GateSpec(kind="prometheus", target=url, path="g", query=query,
                        **kw)  # type: ignore[arg-type]

    assert probe_prometheus(spec(server, "rate", below=0.1)).ok
    high = probe_prometheus(spec(server, "errors", below=0.1))
    assert not high.ok and "not below" in high.detail
    empty = probe_prometheus(spec(f"{server}/empty", "up"))
    assert not empty.ok and empty.pending  # no data yet: wait, do not fail
    down = probe_prometheus(spec("http://127.0.0.1:9", "up"))
    assert not down.ok and "unreachable" in down.detail


def test_probe_runner_counts_only_while_armed() -> None:
    results = iter([Outcome(False, "no")] * 2 + [Outcome(True, "yes")] * 50)
    spec = GateSpec(kind="tcp", target="a:1", path="g", interval=0.01, successes=2,
                    failures=3)
    wakes: list[int] = []
    runner = ProbeRunner(spec, lambda: next(results), lambda: wakes.append(1))
    time.sleep(0.1)
    assert not wakes  # not armed: never run
    runner.arm(True)
    deadline = time.monotonic() + 5
    while not runner.passed and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert runner.passed and runner.failed is None and wakes


def test_hooks_and_webhook(tmp_path: Path, server: str) -> None:
    env = hook_env(project="shop", revision=3, previous=2, status="deployed")
    assert run_hook("post_up", 'echo "$COMPOSE_ROLLBACK_REVISION $COMPOSE_ROLLBACK_HOOK" > out',
                    cwd=tmp_path, env=env, progress=lambda _: None) == 0
    assert (tmp_path / "out").read_text() == "3 post_up\n"
    assert run_hook("pre_up", "exit 7", cwd=tmp_path, env=env, progress=lambda _: None) == 7
    body = payload(project="shop", revision=3, previous=2, outcome="rolled_back",
                   status="failed", restored=2, reason="web: exited", service="web")
    assert notify(f"{server}/hook", body, progress=lambda _: None)
    assert json.loads(_Handler.received[-1])["outcome"] == "rolled_back"
    said: list[str] = []
    assert not notify("http://127.0.0.1:9/hook", body, progress=said.append)
    assert said and "failed" in said[0]


def test_interpolation_follows_compose(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=8080\n# comment\nQUOTED='a b'\nEMPTY=\n")
    env = {**read_env_file(env_file), "HOST": "127.0.0.1"}
    assert env["QUOTED"] == "a b"
    assert interpolate("http://${HOST}:${PORT}/x", env) == "http://127.0.0.1:8080/x"
    assert interpolate("${MISSING:-dflt} ${EMPTY:-e} ${EMPTY-u} $$HOME", env) == "dflt e  $HOME"
    assert interpolate({"a": ["$HOST"]}, env) == {"a": ["127.0.0.1"]}
    with pytest.raises(BadInput, match="NEEDED"):
        interpolate("${NEEDED:?set it}", env)


@pytest.mark.parametrize(("found", "ok"), [("2.40.3", True), ("2.24.0", True), ("5.0.1", True),
                                           ("2.23.3", False), ("1.29.2", False),
                                           ("2.40.3-desktop.1", True), ("garbage", False)])
def test_compose_version_policy(found: str, ok: bool) -> None:
    from compose_rollback.cli import exit_code
    from compose_rollback.dockerdata import check_compose
    from compose_rollback.errors import ExitCode, Unreachable

    if ok:
        check_compose(found)
        return
    with pytest.raises(Unreachable) as caught:
        check_compose(found)
    assert exit_code(caught.value) == ExitCode.UNREACHABLE
