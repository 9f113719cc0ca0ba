"""Helpers of the gate tests (issue 4): compose files with ``x-rollback`` blocks, the CLI, and
what the revision store and the engine report afterwards.

Everything here only writes the user's files and *reads* what the CLI, the store and the engine
report; nothing works around the product.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from support.compose_project import REPO_ROOT, ComposeProject
from support.helpers import clean_env, describe, docker, free_port
from support.prometheus import Prometheus

#: Project defaults of every test: a short soak, a bounded wait. The soak is 200ms, not 1s: a
#: gate still waits for healthy containers and passing probes, and a test about the soak (a
#: flaky release, a metric that rises, an alert during the soak) sets its own; ~0.8 s less per
#: gated deploy.
DEFAULTS = "timeout: 60s\nmin_healthy: 200ms\n"

# -- writing compose files ----------------------------------------------------------------------


def block(text: str, indent: int) -> str:
    """Dedent ``text`` (inline YAML) and indent it by ``indent`` spaces, without end newline."""
    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * indent)


def service(
    image: str,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    rollback: str = "",
    extra: str = "",
) -> str:
    """One service body (YAML text, unindented): a local image, never pulled, its port 8080
    published on ``127.0.0.1:port``, and its own ``x-rollback`` block (``rollback``)."""
    lines = [f"image: {image}", "pull_policy: never"]
    if port is not None:
        lines.append(f'ports: ["127.0.0.1:{port}:8080"]')
    if env:
        lines.append("environment:")
        lines += [f"  {key}: {json.dumps(value)}" for key, value in env.items()]
    if rollback:
        lines += ["x-rollback:", block(rollback, 2)]
    if extra:
        lines.append(block(extra, 0))
    return "\n".join(lines)


def write_compose(
    project: ComposeProject, services: Mapping[str, str], *, settings: str = DEFAULTS
) -> None:
    """``compose.yaml``: the top-level ``x-rollback`` block (``settings``), then ``services``."""
    parts = ["x-rollback:", block(settings, 2), "services:"]
    for name, body in services.items():
        parts += [f"  {name}:", block(body, 4)]
    project.write_file("compose.yaml", "\n".join(parts) + "\n")


def settings(extra: str, *, base: str = DEFAULTS) -> str:
    """Project settings: ``base`` plus ``extra`` (inline YAML, dedented)."""
    return base + textwrap.dedent(extra).strip("\n") + "\n"


# -- running the CLI and reading what it reports ---------------------------------------------


def up(
    project: ComposeProject,
    *args: str,
    code: int | None,
    env: Mapping[str, str] | None = None,
    timeout: float = 240.0,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``up --json``, which must exit with ``code`` (``None``: any); the process and its
    parsed result."""
    result = project.run("up", *args, "--json", check=code, env=env, timeout=timeout)
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except ValueError as error:
        raise AssertionError(f"not JSON ({error}):\n{describe(result)}") from None
    return result, data


def history(project: ComposeProject) -> dict[int, dict[str, Any]]:
    """``history --json`` by revision number."""
    data = json.loads(project.run("history", "--json", check=0).stdout)
    return {int(entry["number"]): entry for entry in data}


def container_env(project: ComposeProject, name: str) -> dict[str, str]:
    env = project.container(name)["Config"]["Env"] or []
    return dict(item.split("=", 1) for item in env)


def assert_deployed(data: Mapping[str, Any], revision: int) -> None:
    assert (data["outcome"], data["revision"], data["failure"]) == ("deployed", revision, None), (
        data
    )


def assert_rolled_back(
    project: ComposeProject,
    data: Mapping[str, Any],
    *,
    revision: int,
    restored: int,
    reason: tuple[str, ...],
    running: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``up`` failed ``revision`` and put ``restored`` back; the failure names ``reason``.

    Checks the ``up`` result, ``history`` (failed revision with its reason and ``restored_to``;
    the restored one still deployed), ``current.yaml`` (equal to the restored revision) and,
    for ``running`` (``{"web": "RELEASE=1"}``), that those containers run that configuration
    again. Returns the history entry of the failed revision.
    """
    assert (data["outcome"], data["revision"], data["restored"]) == (
        "rolled_back",
        revision,
        restored,
    ), data
    revs = history(project)
    failed = revs[revision]
    assert (failed["status"], failed["restored_to"]) == ("failed", restored), failed
    missing = [needle for needle in reason if needle not in failed["reason"]]
    assert not missing, f"history reason {failed['reason']!r} does not name {missing}"
    assert data["failure"]["reason"] == failed["reason"], (data["failure"], failed)
    assert revs[restored]["status"] == "deployed", revs[restored]
    current = (project.state_dir / "current.yaml").read_text()
    assert current == (project.state_dir / revs[restored]["file"]).read_text()
    for name, pair in (running or {}).items():
        key, value = pair.split("=", 1)
        assert container_env(project, name).get(key) == value, f"{name} does not run {pair}"
        assert project.container(name)["State"]["Running"], f"{name} is not running"
    return failed


# -- what must not change -------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """What a deploy leaves behind: revision store files and the project's containers."""

    store: dict[str, bytes]
    containers: dict[str, tuple[str, str]]  # id -> (state, started at)


#: Machine-local files a command may touch without deploying anything.
_LOCAL_STATE = {"lock", "journal.jsonl"}


def deployed(project: ComposeProject) -> Deployed:
    store: dict[str, bytes] = {}
    if project.state_dir.is_dir():
        for path in sorted(project.state_dir.rglob("*")):
            if path.is_file() and path.name not in _LOCAL_STATE:
                store[str(path.relative_to(project.state_dir))] = path.read_bytes()
    containers = {
        str(item["Id"]): (str(item["State"]["Status"]), str(item["State"]["StartedAt"]))
        for item in project.containers()
    }
    return Deployed(store, containers)


# -- a loopback webhook receiver -------------------------------------------------------------


@dataclass
class Webhook:
    """A threaded ``http.server`` on 127.0.0.1 that keeps every POST it receives."""

    url: str
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.posts]


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    received: list[tuple[str, dict[str, str], bytes]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                received.append((self.path, dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/hook", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# -- reporting figures ------------------------------------------------------------------------


def report(capsys: pytest.CaptureFixture[str], text: str, *, name: str) -> Path:
    """Print a measured figure past pytest's capture and keep it in a file under /tmp."""
    directory = Path("/tmp/compose-rollback-test-summaries")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.txt"
    path.write_text(text + "\n")
    print(text)
    with capsys.disabled():
        print(f"\n{text}", flush=True)
    return path


def die_events(project: ComposeProject) -> subprocess.Popen[str]:
    """``docker events`` for the ``die`` of the project's containers, as JSON lines."""
    return subprocess.Popen(
        ["docker", "events", "--format", "{{json .}}", "--filter", "type=container",
         "--filter", "event=die", "--filter", f"label=com.docker.compose.project={project.name}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )


def image_exists(ref: str) -> bool:
    return docker("image", "inspect", ref, check=None).returncode == 0


def popen_cli(project: ComposeProject, *args: str,
              poll_fallback: float | None = None) -> subprocess.Popen[str]:
    """Start our CLI like ``project.run`` does, with stderr as a pipe to read line by line.

    ``poll_fallback``: the container gate's safety-net poll interval in that process (seconds),
    instead of the shipped ``POLL_FALLBACK``; a test sets it to hours to leave the events alone.
    """
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    start = ["-m", "compose_rollback"]
    if poll_fallback is not None:
        start = ["-c", "import runpy, compose_rollback.gates.container as gate\n"
                 f"gate.POLL_FALLBACK = {float(poll_fallback)!r}\n"
                 "runpy.run_module('compose_rollback', run_name='__main__')"]
    return subprocess.Popen(
        [sys.executable, *start, "-p", project.name, *args],
        cwd=project.dir, env=clean_env({"PYTHONPATH": python_path}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
    )


# -- the shipped example (examples/gates) ------------------------------------------------------

GATES_EXAMPLE = REPO_ROOT / "examples" / "gates"


@dataclass(frozen=True)
class GatesExample:
    """``examples/gates`` copied into a test project, on free ports: ``port`` for the web
    service, ``prometheus_port`` for the example's own Prometheus. ``env`` is what the
    example's commands need (``GATES_PORT``, ``PROMETHEUS_URL``)."""

    dir: Path
    port: int
    prometheus_port: int
    env: dict[str, str]


def copy_gates_example(project: ComposeProject, *, busybox: Path) -> GatesExample:
    """Copy ``examples/gates`` into ``project.dir`` and make it that project: its compose
    ``name:`` and image repository become the project's (so ``cleanup()`` removes what it
    builds), and ``prometheus.yml`` scrapes the free port the web service is published on."""
    shutil.copytree(GATES_EXAMPLE, project.dir, dirs_exist_ok=True)
    shutil.copy2(busybox, project.dir / "app" / "busybox")
    compose = project.dir / "compose.yaml"
    text = compose.read_text()
    text = re.sub(r"(?m)^name: .*$", f"name: {project.name}", text)
    compose.write_text(text.replace("image: gates-web:", f"image: {project.name}-web:"))
    port, prometheus_port = free_port(), free_port()
    scrape = project.dir / "prometheus.yml"
    scrape.write_text(scrape.read_text().replace("127.0.0.1:8089", f"127.0.0.1:{port}"))
    env = {"GATES_PORT": str(port), "PROMETHEUS_URL": f"http://127.0.0.1:{prometheus_port}"}
    return GatesExample(project.dir, port, prometheus_port, env)


class ExamplePrometheus(Prometheus):
    """The fixture's Prometheus process, run with a given ``prometheus.yml`` as it is."""

    def __init__(self, workdir: Path, *, config: Path, port: int, binary: str) -> None:
        super().__init__(workdir, binary=binary)
        self.port = port
        self._config = config

    def _write_config(self) -> None:
        shutil.copy2(self._config, self.config_path)
