"""Small helpers shared by the integration fixtures: waiting, commands, loopback HTTP."""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Prefix of everything the test suite creates on the shared engine (images, projects, ...).
PREFIX = "crt"


def unique_name(stem: str = PREFIX, *, hex_chars: int = 8) -> str:
    """A fresh name ``<stem>-<hex>``, safe as a compose project, repository or tag."""
    return f"{stem}-{secrets.token_hex((hex_chars + 1) // 2)[:hex_chars]}"


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.1,
    *,
    what: str | None = None,
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    Raises ``TimeoutError`` after ``timeout`` seconds, naming ``what`` (or the predicate) and
    the last value seen, so a failing test says what it was waiting for.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            label = what or getattr(predicate, "__name__", repr(predicate))
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {label}; last: {value!r}")
        time.sleep(interval)


class CommandError(AssertionError):
    """A command the test suite ran exited with an unexpected code; carries its output."""

    def __init__(self, result: subprocess.CompletedProcess[str], expected: int | None) -> None:
        self.result = result
        self.expected = expected
        super().__init__(describe(result, expected=expected))


def describe(result: subprocess.CompletedProcess[str], *, expected: int | None = None) -> str:
    """A readable account of a finished command, for assertion messages."""
    args = result.args if isinstance(result.args, str) else " ".join(map(str, result.args))
    want = "" if expected is None else f" (expected {expected})"
    return (
        f"$ {args}\nexit code {result.returncode}{want}\n"
        f"--- stdout ---\n{result.stdout or ''}\n--- stderr ---\n{result.stderr or ''}"
    )


def run_command(
    args: Sequence[str],
    *,
    check: bool | int | None = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``args`` capturing text output.

    ``check``: ``True`` expects exit code 0, an ``int`` expects that exact code, ``None`` or
    ``False`` accept any code. A mismatch raises ``CommandError`` with stdout and stderr.
    """
    result = subprocess.run(
        list(args),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    expected = expected_code(check)
    if expected is not None and result.returncode != expected:
        raise CommandError(result, expected)
    return result


def expected_code(check: bool | int | None) -> int | None:
    """Map the ``check`` convention of ``run_command`` to an expected exit code."""
    if check is None or check is False:
        return None
    if check is True:
        return 0
    return check


def docker(
    *args: str,
    check: bool | int | None = True,
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI (see ``run_command`` for ``check``)."""
    return run_command(["docker", *args], check=check, timeout=timeout, env=env, cwd=cwd)


#: Where ``free_port`` keeps the last port it handed out, for every test process of the host.
PORTS_FILE = Path(tempfile.gettempdir()) / "crt-test-ports"
#: First port ``free_port`` hands out; the last is just below the kernel's ephemeral range.
PORTS_LOW = 10000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no other test process of this host is handed.

    Safe beside other xdist workers and other test runs: ports come from ``PORTS_LOW`` up to
    the kernel's ephemeral range (``ip_local_port_range``), where neither ``bind(("", 0))`` nor
    Docker's own choice of a published port ever lands, and one counter in ``PORTS_FILE``,
    advanced under an exclusive ``flock``, hands each port out once per pass through the range
    (~22,000 ports). A port something already listens on is skipped.
    """
    high = _ephemeral_low()
    if high - PORTS_LOW < 1000:  # a host whose ephemeral range starts low: the kernel chooses
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    span = high - PORTS_LOW
    with open(PORTS_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        handle.seek(0)
        text = handle.read().strip()
        last = int(text) if text.isdigit() else PORTS_LOW - 1
        for step in range(1, span + 1):
            port = PORTS_LOW + (last - PORTS_LOW + step) % span
            if _bindable(port):
                handle.seek(0)
                handle.truncate()
                handle.write(f"{port}\n")
                return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {PORTS_LOW}..{high - 1}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer; ``status`` is 0 when nothing answered (refused, reset, timed out)."""

    status: int
    body: str
    headers: Mapping[str, str]
    error: str = ""


# Never use a proxy from the environment: tests only talk to loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(
    url: str, *, timeout: float = 2.0, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """GET ``url`` (loopback only) without raising for HTTP errors or refused connections.

    Redirects are followed (the test app's ``/health`` redirects to ``/health/``).
    """
    if not url.startswith(("http://127.", "http://localhost")):
        raise ValueError(f"tests only talk to loopback, not {url}")
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            body = answer.read().decode("utf-8", "replace")
            return HttpResponse(answer.status, body, dict(answer.headers.items()))
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        return HttpResponse(error.code, body, dict(error.headers.items()))
    except (OSError, urllib.error.URLError) as error:
        return HttpResponse(0, "", {}, error=str(error))


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without variables that would silently change compose's
    idea of the project (file, name, profiles), plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {"COMPOSE_FILE", "COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_ENV_FILES"}
    }
    env.update(extra or {})
    return env


class EventLog:
    """``docker events`` of the default engine, streamed from the moment the ``with`` block
    begins until it ends: ``.lines`` (one JSON object a line, or the ``fmt`` given).

    Never ``docker events --since A --until B`` after the fact: the engine keeps only its last
    256 events for that, and on an engine shared by parallel tests those are soon other
    tests' events, so a test would see nothing (and an "== []" would pass for nothing).
    """

    def __init__(self, *filters: str, fmt: str = "{{json .}}") -> None:
        self._args = ["docker", "events", "--format", fmt]
        for item in filters:
            self._args += ["--filter", item]
        self.lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> EventLog:
        since = docker("system", "info", "--format", "{{json .SystemTime}}").stdout.strip()
        # --since the engine's clock now: the events between this and the subscription come
        # from the engine's buffer, the rest live.
        self._proc = subprocess.Popen([*self._args, "--since", json.loads(since)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def seen(self) -> list[str]:
        """The lines so far, once the stream has had a moment to deliver the last events."""
        time.sleep(1.0)
        return list(self.lines)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip():
                self.lines.append(line.rstrip("\n"))

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None and self._reader is not None
        # The engine sends an event as the action happens; give the stream a moment to
        # deliver the block's last ones.
        time.sleep(1.0)
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._reader.join(timeout=10)

