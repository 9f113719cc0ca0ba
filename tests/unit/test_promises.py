"""Issue 10's command promises, decided without Docker: masking secrets, which hosts skip the
proxy, how a ``from: service`` probe reads wget, what ``up SERVICE`` deploys, and a dry run
that builds and pulls nothing. The integration tests prove the same against the engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from compose_rollback import deploy
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.gates.container import GateFailure, ServiceLine
from compose_rollback.gates.probes import probe_http_inside
from compose_rollback.gates.specs import parse_gate
from compose_rollback.hooks import run_hook
from compose_rollback.project import Project
from compose_rollback.redact import Redactor, redactor_for, referenced
from compose_rollback.revisions import RevisionStore
from compose_rollback.selection import deployed_services
from compose_rollback.urlopen import proxied

from .fake_engine import FakeEngine

# -- masking ----------------------------------------------------------------------------------


def test_redactor_masks_every_value_longest_first_and_skips_tiny_ones() -> None:
    mask = Redactor(["hunter2", "hunter2-extended", "1", "on"])
    assert mask("a hunter2-extended b hunter2 c 1 on") == "a *** b *** c 1 on"
    mask.add(["c 1"])  # added later; still under the minimum length
    assert mask("c 1") == "c 1"
    assert Redactor()("anything") == "anything"


def test_progress_lines_are_masked_and_keep_their_service() -> None:
    lines: list[str] = []
    mask = Redactor()
    sink = mask.progress(lines.append)
    mask.add(["topsecret"])  # known after the sink was made: still masked
    sink(ServiceLine("web", "waiting (exec printed topsecret)"))
    sink("plain topsecret")
    assert lines == ["web: waiting (exec printed ***)", "plain ***"]
    assert getattr(lines[0], "service", None) == "web"


def test_referenced_variables_of_a_model() -> None:
    model = {
        "name": "${PROJECT_NAME:-shop}",
        "services": {"web": {
            "image": "reg/app:${TAG}",  # written into the pin anyway: not a secret (nor name)
            "environment": {"A": "${TOKEN}", "B": "x$PLAIN", "C": "$${LITERAL}", "PASSED": None},
            "command": ["echo", "${ARG:?required}"],
        }},
        "x-rollback": {"hooks": {"webhook": "http://127.0.0.1/${HOOK_KEY}"}},
    }
    assert referenced(model) == {"TOKEN", "PLAIN", "PASSED", "ARG", "HOOK_KEY"}
    mask = redactor_for([model], {"TOKEN": "tok-123456", "TAG": "v1.2.3", "PASSED": "passed!",
                                  "UNRELATED": "something-else"})
    assert mask.values == {"tok-123456", "passed!"}


def test_a_gate_failure_is_masked_in_reason_and_logs() -> None:
    failure = GateFailure("web", "p-web-1", "is unhealthy: pw=hunter22", "log pw=hunter22")
    masked = failure.masked(Redactor(["hunter22"]))
    assert (masked.reason, masked.logs) == ("is unhealthy: pw=***", "log pw=***")


# -- proxies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.45.6.7", "localhost", "LOCALHOST.",
                                  "api.localhost", "::1", "[::1]"])
def test_loopback_is_never_proxied(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert proxied(host) is False


def test_other_hosts_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "internal.example")
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert proxied("api.example.org") is True
    assert proxied("internal.example") is False
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert proxied("api.example.org") is False


# -- from: service probes ---------------------------------------------------------------------


class _Wget:
    """``exec_in`` answering like busybox wget -S: body on stdout, then headers on stderr."""

    def __init__(self, code: int, output: str) -> None:
        self.answer = (code, output)
        self.commands: list[Sequence[str]] = []

    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]:
        self.commands.append(command)
        return self.answer


def _inside(**extra: Any) -> Any:
    raw = {"http": "http://127.0.0.1:8080/health", "from": "service", **extra}
    return parse_gate(raw, path="gates[0]", service="web")


ERROR_500 = ("  HTTP/1.1 302 Found\n  Location: /health/\n  HTTP/1.1 500 Internal Server Error\n"
             "wget: server returned error: HTTP/1.1 500 Internal Server Error\n")
OK_201 = "created ok\n  HTTP/1.1 201 Created\n  Content-Type: text/plain\n"


def test_from_service_judges_the_last_status_line() -> None:
    assert probe_http_inside(_inside(status=500), _Wget(1, ERROR_500), ["c1"]).ok
    failed = probe_http_inside(_inside(), _Wget(1, ERROR_500), ["c1"])
    assert not failed.ok and "returned 500, expected 200-399" in failed.detail
    wrong = probe_http_inside(_inside(status=200), _Wget(0, OK_201), ["c1"])
    assert not wrong.ok and "returned 201, expected 200" in wrong.detail
    engine = _Wget(0, OK_201)
    assert probe_http_inside(_inside(status="200-299", body="created ok"), engine, ["c1"]).ok
    assert "-S" in engine.commands[0]
    body = probe_http_inside(_inside(body="Content-Type"), _Wget(0, OK_201), ["c1"])
    assert not body.ok, "the headers are not the body"


def test_from_service_without_an_answer_says_why() -> None:
    out = probe_http_inside(_inside(), _Wget(1, "wget: can't connect to remote host\n"), ["c"])
    assert not out.ok and "can't connect" in out.detail


# -- up SERVICE and the dry run ---------------------------------------------------------------


def test_deployed_services_follow_depends_on_transitively() -> None:
    model = {"services": {"web": {"depends_on": {"api": {}}}, "api": {"depends_on": {"db": {}}},
                          "db": {}, "cache": {}}}
    assert deployed_services(model, ["web"]) == ["api", "db", "web"]
    assert deployed_services(model, ["cache"]) == ["cache"]
    assert deployed_services(model, []) == ["api", "cache", "db", "web"]


class _Recording(FakeEngine):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls: list[str] = []

    def build(self, project: Project, services: Sequence[str]) -> None:
        self.calls.append(f"build {' '.join(services)}")

    def pull(self, project: Project, services: Sequence[str], *, policy: str) -> None:
        self.calls.append(f"pull {' '.join(services)}")

    def tag(self, source: str, target: str) -> None:
        self.calls.append(f"tag {target}")


LOCAL = ImageInfo("sha256:" + "3" * 64, ("worker:dev",), ())
REMOTE = ImageInfo("sha256:" + "1" * 64, ("reg/app:1",), ("reg/app@sha256:" + "a" * 64,))


@pytest.mark.parametrize(("flags", "present", "actions"), [
    ({}, {}, {"web": "pull", "worker": "build"}),
    ({}, {"reg/app:1": REMOTE, "worker:dev": LOCAL}, {}),
    ({"build": True, "pull": "always"}, {"reg/app:1": REMOTE, "worker:dev": LOCAL},
     {"web": "pull", "worker": "build"}),
    ({"pull": "missing"}, {"worker:dev": LOCAL}, {"web": "pull"}),
])
def test_dry_run_only_says_what_it_would_build_or_pull(
    tmp_path: Path, flags: dict[str, Any], present: dict[str, ImageInfo],
    actions: dict[str, str],
) -> None:
    model = {"name": "shop", "services": {
        "web": {"image": "reg/app:1"},
        "worker": {"image": "worker:dev", "build": {"context": "."}}}}
    engine = _Recording(model=model, images=present)
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    ctx = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                  progress=lambda line: None,
                  engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    result = deploy.up(ctx, services=[], build=flags.get("build", False),
                       pull=flags.get("pull"), message="", overrides=deploy.Overrides(),
                       rollback=True, dry_run=True)
    assert result.outcome == "dry_run" and dict(result.actions) == actions
    assert engine.calls == [] and engine.applied == []
    assert not (tmp_path / ".rollback").exists()
    for service in actions:  # named as written: its pin is known only after build or pull
        ref = model["services"][service]["image"]
        assert f"image: {ref}\n" in result.overlay, result.overlay


# -- hooks ------------------------------------------------------------------------------------


def test_hook_output_goes_to_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    code = run_hook("post_up", "echo to-stdout; echo to-stderr >&2", cwd=tmp_path, env={},
                    progress=lambda line: None)
    out, err = capfd.readouterr()
    assert code == 0 and out == "" and "to-stdout" in err and "to-stderr" in err
