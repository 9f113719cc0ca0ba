"""Issue 4 end to end, continued: hooks and their environment, the webhook and its payload,
every kind of bad gate or hook setting rejected with its exact path before anything is
deployed, and the shipped ``examples/gates`` project. Helpers in ``gates_helpers.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from gates_helpers import (
    DEFAULTS,
    Deployed,
    ExamplePrometheus,
    assert_deployed,
    assert_rolled_back,
    copy_gates_example,
    deployed,
    history,
    service,
    settings,
    up,
    webhook_receiver,
    write_compose,
)

from compose_rollback import __version__
from support.compose_project import ComposeProject
from support.helpers import describe, free_port, http_get, unique_name
from support.prereq import need
from support.prometheus import prometheus_binary
from support.testimages import AppImages, find_busybox

pytestmark = pytest.mark.docker

#: A hook that appends what it was told to ``hooks.log`` in the project directory. ``$$``: a
#: literal ``$`` for the shell (compose interpolation rules apply to ``x-rollback`` too).
LOG_HOOK = (
    "printf '%s|%s|%s|%s|%s|%s\\n' \"$$COMPOSE_ROLLBACK_HOOK\" \"$$COMPOSE_ROLLBACK_PROJECT\" "
    '"$$COMPOSE_ROLLBACK_REVISION" "$$COMPOSE_ROLLBACK_PREVIOUS" "$$COMPOSE_ROLLBACK_STATUS" '
    '"$$COMPOSE_ROLLBACK_REASON" >> hooks.log'
)
#: A gate that fails at its first probe: revision 2 of several tests.
FAILING_GATE = "gates: [{exec: [\"false\"], failures: 1}]"
PAYLOAD_KEYS = {
    "event", "project", "revision", "previous", "outcome", "status", "restored", "reason",
    "service", "time", "tool", "version",
}


# -- hooks --------------------------------------------------------------------------------------


def test_failing_pre_up_hook_deploys_nothing_and_exits_2(
    project: ComposeProject, images: AppImages
) -> None:
    image = images.local("healthy")
    write_compose(project, {"web": service(image, env={"RELEASE": "1"})})
    assert_deployed(up(project, code=0)[1], 1)
    before = deployed(project)

    guarded = settings("""
        hooks:
          pre_up: test -f approved
    """)
    write_compose(project, {"web": service(image, env={"RELEASE": "2"})}, settings=guarded)
    result = project.run("up", check=2)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert any(re.search(r"pre_up hook `test -f approved` exited with 1; nothing was deployed",
                         line) for line in lines), describe(result)
    assert "Traceback" not in result.stderr
    assert deployed(project) == before, "a failed pre_up hook changed the store or containers"
    assert list(history(project)) == [1]

    # Once the condition holds, the same command deploys (the number was not used up); a
    # webhook nobody answers is reported but does not fail the deploy.
    (project.dir / "approved").touch()
    dead = f"http://127.0.0.1:{free_port()}/hook"
    guarded_and_notified = settings(f"""
        hooks:
          pre_up: test -f approved
          webhook: {dead}
    """)
    write_compose(project, {"web": service(image, env={"RELEASE": "2"})},
                  settings=guarded_and_notified)
    result, data = up(project, code=0)
    assert_deployed(data, 2)
    assert f"webhook {dead} failed" in result.stderr, describe(result)


def test_hooks_run_with_the_documented_environment(
    project: ComposeProject, images: AppImages
) -> None:
    hooks = settings(f"""
        hooks:
          pre_up: {json.dumps(LOG_HOOK)}
          post_up: {json.dumps(LOG_HOOK)}
          on_failure: {json.dumps(LOG_HOOK)}
          on_rollback: {json.dumps(LOG_HOOK)}
    """)
    image = images.local("healthy")
    write_compose(project, {"web": service(image, env={"RELEASE": "1"})}, settings=hooks)
    assert_deployed(up(project, code=0)[1], 1)

    write_compose(project, {"web": service(image, env={"RELEASE": "2"}, rollback=FAILING_GATE)},
                  settings=hooks)
    _, data = up(project, code=1)
    failed = assert_rolled_back(project, data, revision=2, restored=1,
                                reason=("web", "gate exec false"), running={"web": "RELEASE=1"})

    log = (project.dir / "hooks.log").read_text().splitlines()
    name, reason = project.name, failed["reason"]
    assert log == [
        f"pre_up|{name}|1||pending|",
        f"post_up|{name}|1||deployed|",
        f"pre_up|{name}|2|1|pending|",
        f"on_failure|{name}|2|1|rolled_back|{reason}",
        f"on_rollback|{name}|2|1|rolled_back|{reason}",
    ], "\n".join(log)


# -- the webhook --------------------------------------------------------------------------------


def test_webhook_receives_each_revision_result_without_secrets(
    project: ComposeProject, images: AppImages
) -> None:
    secret = unique_name("crt-secret-webhook", hex_chars=16)
    project.write_file(".env", f"APP_TOKEN={secret}\n")
    image = images.local("healthy")
    env = {"APP_TOKEN": "${APP_TOKEN}"}
    with webhook_receiver() as hook:
        notified = settings(f"""
            hooks:
              webhook: {hook.url}
        """)
        write_compose(project, {"web": service(image, env={**env, "RELEASE": "1"})},
                      settings=notified)
        assert_deployed(up(project, code=0)[1], 1)
        assert project.container("web")["Config"]["Env"].count(f"APP_TOKEN={secret}") == 1

        write_compose(project, {"web": service(image, env={**env, "RELEASE": "2"},
                                               rollback=FAILING_GATE)}, settings=notified)
        _, data = up(project, code=1)
        failed = assert_rolled_back(project, data, revision=2, restored=1,
                                    reason=("gate exec false",), running={"web": "RELEASE=1"})
        posts = list(hook.posts)

    assert [path for path, _, _ in posts] == ["/hook", "/hook"], posts
    for _, headers, body in posts:
        assert headers.get("Content-Type") == "application/json", headers
        assert secret.encode() not in body, f"the webhook received the .env secret: {body!r}"
    success, rollback = (json.loads(body) for _, _, body in posts)
    for payload in (success, rollback):
        assert set(payload) == PAYLOAD_KEYS, payload
        assert (payload["event"], payload["project"]) == ("revision", project.name)
        assert (payload["tool"], payload["version"]) == ("compose-rollback", __version__)
        sent = datetime.strptime(payload["time"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc)
        assert abs(datetime.now(timezone.utc) - sent) < timedelta(minutes=5), payload
    assert {k: v for k, v in success.items() if k != "time"} | {"time": None} == {
        "event": "revision", "project": project.name, "revision": 1, "previous": None,
        "outcome": "deployed", "status": "deployed", "restored": None, "reason": "",
        "service": "", "time": None, "tool": "compose-rollback", "version": __version__,
    }
    assert (rollback["revision"], rollback["previous"], rollback["restored"]) == (2, 1, 1)
    assert (rollback["outcome"], rollback["status"]) == ("rolled_back", "failed")
    assert (rollback["service"], rollback["reason"]) == ("web", failed["reason"])


def test_a_secret_in_a_gate_url_is_not_written_or_sent(
    project: ComposeProject, images: AppImages
) -> None:
    """A token in a gate URL (``?token=${APP_TOKEN}`` from ``.env``) is a secret like any
    other: the reason of a failed gate must not carry it into history or the webhook."""
    secret = unique_name("crt-secret-gate", hex_chars=16)
    project.write_file(".env", f"APP_TOKEN={secret}\n")
    port = free_port()
    image = images.local("healthy")
    with webhook_receiver() as hook:
        notified = settings(f"""
            hooks:
              webhook: {hook.url}
        """)
        write_compose(project, {"web": service(image, port=port, env={"RELEASE": "1"})},
                      settings=notified)
        assert_deployed(up(project, code=0)[1], 1)
        gate = f"""
            gates:
              - http: "http://127.0.0.1:{port}/cgi-bin/status?code=500&token=${{APP_TOKEN}}"
                failures: 1
        """
        write_compose(project, {"web": service(image, port=port, env={"RELEASE": "2"},
                                               rollback=gate)}, settings=notified)
        result, data = up(project, code=1)
        assert_rolled_back(project, data, revision=2, restored=1,
                           reason=("returned 500",), running={"web": "RELEASE=1"})
        bodies = [body for _, _, body in hook.posts]
    leaks = [str(path.relative_to(project.dir)) for path in sorted(project.dir.rglob("*"))
             if path.is_file() and path.name != ".env" and secret.encode() in path.read_bytes()]
    leaks += [f"webhook POST {i + 1}" for i, body in enumerate(bodies) if secret.encode() in body]
    if secret in result.stdout:
        leaks.append("the --json result on stdout")
    assert not leaks, f"the gate URL's secret leaked into: {leaks}"


# -- bad settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    """One bad setting: where it goes (``top``: project ``x-rollback`` lines; ``own``: the
    ``web`` service's), the exact path the error must name, and a word of the problem."""

    id: str
    path: str
    problem: str
    top: str = ""
    own: str = ""


GATE = "http://127.0.0.1:8080/"
BAD = [
    Bad("unknown-gate-kind", "services.web.x-rollback.gates[0]", "exactly one of",
        own='gates: [{grpc: "127.0.0.1:50051"}]'),
    Bad("two-kinds-in-one-gate", "services.web.x-rollback.gates[0]", "exactly one of",
        own=f'gates: [{{http: "{GATE}", tcp: "127.0.0.1:8080"}}]'),
    Bad("http-not-a-url", "services.web.x-rollback.gates[0].http", "expected a URL",
        own="gates: [{http: not-a-url}]"),
    Bad("status-99", "services.web.x-rollback.gates[0].status", "expected a status code",
        own=f'gates: [{{http: "{GATE}", status: 99}}]'),
    Bad("status-range-backwards", "services.web.x-rollback.gates[0].status",
        "expected a status code", own=f'gates: [{{http: "{GATE}", status: "300-200"}}]'),
    Bad("bad-body-regex", "services.web.x-rollback.gates[0].body_regex",
        "invalid regular expression", own=f'gates: [{{http: "{GATE}", body_regex: "(open"}}]'),
    Bad("tcp-without-port", "services.web.x-rollback.gates[0].tcp", "expected host:port",
        own="gates: [{tcp: nohost}]"),
    Bad("exec-empty", "services.web.x-rollback.gates[0].exec", "expected a command",
        own="gates: [{exec: []}]"),
    Bad("prometheus-without-query", "x-rollback.gates[0].query", "needs a PromQL query",
        top='gates: [{prometheus: "http://127.0.0.1:9090"}]'),
    Bad("below-not-a-number", "x-rollback.gates[0].below", "expected a number",
        top='gates: [{prometheus: "http://127.0.0.1:9090", query: up, below: "x"}]'),
    Bad("unknown-hook", "x-rollback.hooks.post_deploy", "unknown hook",
        top='hooks: {post_deploy: "true"}'),
    Bad("webhook-not-http", "x-rollback.hooks.webhook", "expected a URL",
        top='hooks: {webhook: "ftp://x"}'),
    Bad("oneshot-not-a-boolean", "services.web.x-rollback.oneshot", "expected true or false",
        own='oneshot: "yes"'),
    Bad("project-exec-without-service", "x-rollback.gates[0].service", "must name its service",
        top='gates: [{exec: ["true"]}]'),
    Bad("gate-for-an-unknown-service", "x-rollback.gates[0].service", "no service named 'api'",
        top='gates: [{tcp: "127.0.0.1:8080", service: api}]'),
    Bad("successes-0", "services.web.x-rollback.gates[0].successes", "at least 1",
        own='gates: [{tcp: "127.0.0.1:8080", successes: 0}]'),
    Bad("bad-interval", "services.web.x-rollback.gates[0].interval", "expected a duration",
        own='gates: [{tcp: "127.0.0.1:8080", interval: soon}]'),
    Bad("unknown-gate-setting", "services.web.x-rollback.gates[0].retries",
        "unknown tcp gate setting", own='gates: [{tcp: "127.0.0.1:8080", retries: 3}]'),
    Bad("second-gate-bad", "services.web.x-rollback.gates[1].http", "expected a URL",
        own='gates: [{tcp: "127.0.0.1:8080"}, {http: "127.0.0.1:8080/health"}]'),
    Bad("from-neither-host-nor-service", "services.web.x-rollback.gates[0].from",
        "expected host or service", own=f'gates: [{{http: "{GATE}", from: container}}]'),
    Bad("gates-not-a-list", "services.web.x-rollback.gates", "expected a list",
        own='gates: {tcp: "127.0.0.1:8080"}'),
    Bad("empty-hook", "x-rollback.hooks.pre_up", "expected text", top='hooks: {pre_up: ""}'),
]


@pytest.fixture(scope="module")
def running(
    docker_engine: None, images: AppImages, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ComposeProject, Deployed]]:
    """One project with revision 1 deployed; every bad setting is tried against it."""
    created = ComposeProject(tmp_path_factory.mktemp("bad-settings"))
    try:
        write_compose(created, {"web": service(images.local("healthy"))})
        assert_deployed(up(created, code=0)[1], 1)
        yield created, deployed(created)
    finally:
        created.cleanup()


# One worker runs every row, so the ``running`` project is deployed once, not on each worker.
@pytest.mark.xdist_group("bad-settings")
@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_bad_setting_is_rejected_with_its_path_and_nothing_is_deployed(
    running: tuple[ComposeProject, Deployed], images: AppImages, bad: Bad
) -> None:
    project, before = running
    top = settings(bad.top) if bad.top else DEFAULTS
    write_compose(project, {"web": service(images.local("healthy"), env={"RELEASE": "2"},
                                           rollback=bad.own)}, settings=top)
    result = project.run("up", check=None)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, describe(result, expected=2)
    assert len(lines) == 1, describe(result)
    # One line: the program, then the exact path, then the problem.
    assert lines[0].startswith(f"compose-rollback: {bad.path}: "), lines[0]
    assert bad.problem in lines[0], lines[0]
    assert deployed(project) == before, "a rejected setting changed the store or containers"


# -- the shipped example ------------------------------------------------------------------------


def test_gates_example_deploys_v1_and_its_prometheus_gate_rolls_v2_back(
    project: ComposeProject, tmp_path: Path
) -> None:
    busybox = need(find_busybox(), "no static busybox (Debian package busybox-static)")
    binary = need(prometheus_binary(), "prometheus is not installed (Debian package prometheus)")
    example = copy_gates_example(project, busybox=busybox)
    # The example's own prometheus.yml, as the README starts it (on a free loopback port).
    server = ExamplePrometheus(tmp_path / "prometheus", config=example.dir / "prometheus.yml",
                               port=example.prometheus_port, binary=binary)
    server.start()
    try:
        v1 = {**example.env, "VERSION": "v1"}
        _, data = up(project, "--build", "-m", "v1", "--min-healthy", "3s", code=0, env=v1)
        assert_deployed(data, 1)
        assert http_get(f"http://127.0.0.1:{example.port}/").body == "hello from v1\n"
        assert server.value('app_errors_ratio{job="gates-web"}') == 0.0

        v2 = {**example.env, "VERSION": "v2"}
        _, data = up(project, "--build", "-m", "v2", "--min-healthy", "3s", code=1, env=v2)
        # Reasons show the setting as written (a ${VAR} may hold a secret), not its value.
        assert_rolled_back(project, data, revision=2, restored=1,
                           reason=("gate prometheus ${PROMETHEUS_URL", "= 0.25",
                                   "not below 0.05"),
                           running={"web": "VERSION=v1"})
        assert http_get(f"http://127.0.0.1:{example.port}/").body == "hello from v1\n"
    finally:
        server.stop()
