"""Issue 10, "Promises the commands make", end to end against the real engine: a dry run
changes nothing, ``--json`` stdout stays JSON, ``up SERVICE`` deploys and gates what Compose
would start, loopback probes and webhooks never go through a proxy, ``from: service`` probes
judge the status, and the values of the project's variables appear in nothing we store or
send. Helpers in ``gates_helpers.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from gates_helpers import (
    assert_deployed,
    deployed,
    history,
    image_exists,
    service,
    settings,
    up,
    webhook_receiver,
    write_compose,
)

from support.compose_project import ComposeProject
from support.helpers import describe, docker, free_port, unique_name
from support.registry import Registry
from support.testimages import AppImages

pytestmark = pytest.mark.docker


def _image_id(ref: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()


# -- --dry-run builds, pulls, tags and writes nothing ------------------------------------------


def test_dry_run_builds_and_pulls_nothing_and_says_what_it_would(
    project: ComposeProject, images: AppImages, registry: Registry
) -> None:
    repo = registry.new_repo()
    images.push("healthy", repo, "v1")
    remote = registry.ref(repo, "v1")
    images.remove_local(remote)  # only in the registry: `up` would pull it
    project.write_file("b/Dockerfile", f"FROM {images.local('healthy')}\nENV VERSION=built\n")
    built = f"{project.name}-built"  # compose's name for a build-only service's image
    project.write(f"""
        x-rollback: {{timeout: 60s, min_healthy: 0s}}
        services:
          app:
            image: {remote}
          built:
            build: ./b
    """)

    _, data = up(project, "--dry-run", code=0)
    assert data["outcome"] == "dry_run", data
    assert not image_exists(remote), "the dry run pulled the image"
    assert not image_exists(built), "the dry run built the image"
    assert (data["would_build"], data["would_pull"]) == (["built"], ["app"]), data
    assert not project.state_dir.exists() and project.containers() == []
    assert f"image: {remote}" in data["overlay"], data["overlay"]  # named, not yet pinned
    text = project.run("up", "--dry-run", check=0).stdout
    assert "would build (not done in a dry run): built" in text, text
    assert "would pull (not done in a dry run): app" in text, text
    assert not image_exists(remote) and not image_exists(built)

    assert_deployed(up(project, code=0)[1], 1)  # a real up builds and pulls them
    before, ids = deployed(project), (_image_id(remote), _image_id(built))
    images.push("unhealthy", repo, "v1")  # a new release under the same tag
    images.remove_local(registry.ref(repo, "v1"))
    docker("image", "tag", ids[0], remote)  # the old release is what is here
    project.write_file("b/Dockerfile", f"FROM {images.local('healthy')}\nENV VERSION=two\n")
    _, data = up(project, "--dry-run", "--build", "--pull", "always", code=0)
    assert (data["would_build"], data["would_pull"]) == (["built"], ["app"]), data
    assert (_image_id(remote), _image_id(built)) == ids, "the dry run pulled or rebuilt"
    assert deployed(project) == before
    retention = [r for r in docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
                 .stdout.split() if f"rollback-{project.name}" in r]
    assert len(retention) == 2, retention  # revision 1's two; the dry run tagged nothing


# -- --json: stdout is the result, hook output goes to stderr ----------------------------------


def test_json_stdout_stays_json_when_hooks_print(
    project: ComposeProject, images: AppImages
) -> None:
    hooks = settings("""
        hooks:
          pre_up: echo pre-up-says-hello
          post_up: echo post-up-says-hello
    """)
    write_compose(project, {"web": service(images.local("healthy"))}, settings=hooks)
    result, data = up(project, code=0)  # up() parses stdout as JSON
    assert_deployed(data, 1)
    assert "pre-up-says-hello" in result.stderr and "post-up-says-hello" in result.stderr, (
        describe(result))
    assert "says-hello" not in result.stdout


# -- up SERVICE: what Compose starts, and all of it gated --------------------------------------


def test_up_service_leaves_out_a_new_service_it_does_not_depend_on(
    project: ComposeProject, images: AppImages
) -> None:
    write_compose(project, {"web": service(images.local("healthy"))})
    assert_deployed(up(project, code=0)[1], 1)
    write_compose(project, {"web": service(images.local("healthy"), env={"RELEASE": "2"}),
                            "cache": service(images.local("crash"))})
    result, data = up(project, "web", code=0)
    assert_deployed(data, 2)
    assert project.containers("cache") == [], "up web started cache, which web does not need"
    revision = history(project)[2]
    assert (revision["services"], sorted(revision["pins"])) == (["web"], ["web"]), revision
    assert "cache" in result.stderr and "not deployed" in result.stderr, describe(result)


def test_up_service_gates_the_new_dependency_it_starts(
    project: ComposeProject, images: AppImages
) -> None:
    write_compose(project, {"web": service(images.local("healthy"))})
    assert_deployed(up(project, code=0)[1], 1)
    write_compose(project, {
        "web": service(images.local("healthy"), extra="depends_on: [cache]"),
        "cache": service(images.local("crash")),
    })
    _, data = up(project, "web", code=1)
    assert (data["outcome"], data["restored"]) == ("rolled_back", 1), data
    assert data["failure"]["service"] == "cache", data["failure"]
    assert history(project)[2]["services"] == ["cache", "web"]


# -- loopback probes and webhooks never go through a proxy -------------------------------------


@dataclass
class Proxy:
    url: str
    hits: list[str] = field(default_factory=list)


@contextmanager
def recording_proxy() -> Iterator[Proxy]:
    """An HTTP proxy on loopback that records every request and answers 502 (a proxy that
    cannot reach this machine's loopback)."""
    hits: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            with lock:
                hits.append(f"{self.command} {self.path}")
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_CONNECT = do_HEAD = _any

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Proxy(f"http://127.0.0.1:{server.server_address[1]}", hits)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_loopback_probes_and_webhook_bypass_the_proxy(
    project: ComposeProject, images: AppImages
) -> None:
    port = free_port()
    with recording_proxy() as proxy, webhook_receiver() as hook:
        gates = settings(f"""
            gates:
              - {{http: "http://127.0.0.1:{port}/health", interval: 200ms}}
              - {{http: "http://localhost:{port}/health", interval: 200ms}}
            hooks:
              webhook: {hook.url}
        """)
        write_compose(project, {"web": service(images.local("healthy"), port=port)},
                      settings=gates)
        names = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY")
        env = dict.fromkeys(names, proxy.url)
        env |= {"no_proxy": "", "NO_PROXY": ""}
        result, data = up(project, code=0, env=env)
        assert_deployed(data, 1)
        assert proxy.hits == [], f"requests went through the proxy: {proxy.hits}"
        assert [p["outcome"] for p in hook.payloads()] == ["deployed"], describe(result)


# -- from: service probes judge the status they get ---------------------------------------------


def test_from_service_probe_honours_status(project: ComposeProject, images: AppImages) -> None:
    def gate(code: int, status: int) -> str:
        url = f"http://127.0.0.1:8080/cgi-bin/status?code={code}"
        return (f"gates: [{{http: \"{url}\", from: service, status: {status}, "
                "interval: 200ms, failures: 1}]")

    healthy = images.local("healthy")
    write_compose(project, {"web": service(healthy, rollback=gate(500, 500))})
    _, data = up(project, code=0)  # a 500 that was asked for passes
    assert_deployed(data, 1)
    write_compose(project, {"web": service(healthy, env={"RELEASE": "2"},
                                           rollback=gate(201, 200))})
    _, data = up(project, code=1)  # a 201 is not the 200 that was asked for
    assert data["outcome"] == "rolled_back", data
    assert "returned 201, expected 200" in data["failure"]["reason"], data["failure"]


# -- secrets: the values of the project's variables are masked everywhere -----------------------


def test_secret_values_appear_in_nothing_stored_or_sent(
    project: ComposeProject, images: AppImages
) -> None:
    secret = unique_name("s3cr3t", hex_chars=16)
    project.write_file(".env", f"SECRET={secret}\n")  # not in our process environment
    healthy = images.local("healthy")
    env = {"SECRET_VALUE": "${SECRET}"}
    hooks = settings("""
        hooks:
          on_failure: env > hook-env.txt
    """)
    outputs: list[str] = []
    with webhook_receiver() as hook:
        hooked = hooks + f"  webhook: {hook.url}\n"
        write_compose(project, {"web": service(healthy, env=env)}, settings=hooked)
        outputs.append(up(project, code=0)[0].stdout)

        # An app that prints the secret in its log and in its health check's output.
        leaky = """
            entrypoint: ["/bin/sh", "-c", "echo leaked=$$SECRET_VALUE >&2; exec /app/entrypoint.sh"]
            healthcheck:
              test: ["CMD-SHELL", "echo health=$$SECRET_VALUE; exit 1"]
              interval: 500ms
              retries: 1
        """
        write_compose(project, {"web": service(healthy, env=env, extra=leaky)}, settings=hooked)
        result, data = up(project, code=1)
        outputs += [result.stdout, result.stderr]
        assert "health=***" in data["failure"]["reason"], data["failure"]
        assert "leaked=***" in data["failure"]["logs"], data["failure"]
        hook_env = (project.dir / "hook-env.txt").read_text()
        assert "health=***" in hook_env, hook_env

        # An exec gate whose command prints it.
        gate = ('gates: [{exec: ["sh", "-c", "echo exec=$$SECRET_VALUE; exit 1"], '
                "failures: 1}]")
        write_compose(project, {"web": service(healthy, env=env, rollback=gate)},
                      settings=hooked)
        result, data = up(project, code=1)
        outputs += [result.stdout, result.stderr]
        assert "exec=***" in data["failure"]["reason"], data["failure"]

        for command in (["history", "--json"], ["status", "--json"], ["history"]):
            outputs.append(project.run(*command, check=0).stdout)
        bodies = [body.decode() for _, _, body in hook.posts]
    assert len(bodies) == 3 and "***" in bodies[1] and "***" in bodies[2], bodies
    assert "exec=***" in history(project)[3]["reason"]
    stored = {str(p.relative_to(project.dir)): p.read_text(errors="replace")
              for p in sorted(project.dir.rglob("*")) if p.is_file() and p.name != ".env"}
    assert any("health=***" in text for text in stored.values()), sorted(stored)
    leaks = [name for name, text in [*stored.items(), *enumerate(outputs),
                                     *enumerate(bodies)] if secret in text]
    assert leaks == [], f"the secret's value appears in {leaks}"
