"""Probe gates (http, tcp, exec, prometheus), each run by its own thread.

A probe only counts while it is *armed*: once the containers it depends on are good. Each
result wakes the gate loop, so a slow probe never delays crash detection. ``successes``
consecutive passes make it pass; ``failures`` consecutive failures fail the deploy at once.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from compose_rollback.gates.specs import GateSpec
from compose_rollback.urlopen import urlopen


@dataclass(frozen=True)
class Outcome:
    """The answer of one probe: passed or not, why, or no answer yet."""

    ok: bool
    detail: str
    pending: bool = False  # no answer yet (e.g. no data scraped yet): neither pass nor fail


class ExecEngine(Protocol):
    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]: ...


def probe_http(spec: GateSpec) -> Outcome:
    import urllib.error  # imported on use: urllib costs ~20 ms of every deploy's start-up
    import urllib.request

    assert isinstance(spec.target, str)
    request = urllib.request.Request(spec.target, headers={"User-Agent": "compose-rollback"})
    try:
        with urlopen(request, timeout=spec.timeout) as response:
            code, body = response.status, response.read(65536).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        code, body = error.code, error.read(65536).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return Outcome(False, f"GET {spec.label} failed: {reason}")
    return _judge_http(spec, code, body)


def _judge_http(spec: GateSpec, code: int, body: str) -> Outcome:
    low, high = spec.status
    if not low <= code <= high:
        expected = str(low) if low == high else f"{low}-{high}"
        return Outcome(False, f"GET {spec.label} returned {code}, expected {expected}")
    if spec.body is not None and spec.body not in body:
        return Outcome(False, f"GET {spec.label}: body does not contain {spec.body!r}")
    if spec.body_regex is not None and not re.search(spec.body_regex, body):
        return Outcome(False, f"GET {spec.label}: body does not match {spec.body_regex!r}")
    return Outcome(True, f"GET {spec.label} returned {code}")


def probe_tcp(spec: GateSpec) -> Outcome:
    assert isinstance(spec.target, str)
    host, port = spec.target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=spec.timeout):
            return Outcome(True, f"{spec.label} accepts connections")
    except OSError as error:
        return Outcome(False, f"cannot connect to {spec.label}: {error.strerror or error}")


def probe_exec(spec: GateSpec, engine: ExecEngine, containers: Sequence[str]) -> Outcome:
    command = tuple(spec.target)
    if not containers:
        return Outcome(False, "no running container to run the command in")
    for container in containers:
        code, output = engine.exec_in(container, command, timeout=spec.timeout)
        if code != 0:
            tail = output.strip().splitlines()[-1:] or [""]
            return Outcome(False, f"`{spec.label}` exited with {code} {tail[0]}".strip())
    return Outcome(True, f"`{spec.label}` exited with 0")


def probe_http_inside(spec: GateSpec, engine: ExecEngine, containers: Sequence[str]) -> Outcome:
    """An HTTP probe from inside the service's container (its network), with its wget.

    ``wget -S`` prints each response's status line (``  HTTP/1.1 503 …``, one per redirect)
    on stderr, which ``exec_in`` returns after the body: the last one is the answer judged
    against ``status``. wget fetches no body for an error status (4xx, 5xx)."""
    assert isinstance(spec.target, str)
    for container in containers[:1]:
        code, output = engine.exec_in(container, ("wget", "-S", "-q", "-O", "-", spec.target),
                                      timeout=spec.timeout + 1)
        found = list(_STATUS_LINE.finditer(output))
        if not found:
            return Outcome(False, f"GET {spec.label} from {spec.service} failed (wget exit "
                           f"{code}): {output.strip()[-200:]}")
        body = output[:found[0].start()] if code == 0 else ""
        return _judge_http(spec, int(found[-1].group(1)), body)
    return Outcome(False, "no running container to probe from")


# At the start of a line, or after wget's two-space indent right behind a body that did not
# end with a newline (the body on stdout runs straight into the status lines on stderr).
_STATUS_LINE = re.compile(r"(?:^[ \t]*|[ \t]{2})HTTP/\d(?:\.\d)? (\d{3})\b", re.MULTILINE)


def probe_prometheus(spec: GateSpec) -> Outcome:
    """Truthy: a non-empty result whose every value meets ``below``/``above`` if given."""
    import urllib.error
    import urllib.parse

    assert isinstance(spec.target, str)
    url = (spec.target.rstrip("/") + "/api/v1/query?"
           + urllib.parse.urlencode({"query": spec.query}))
    try:
        with urlopen(url, timeout=spec.timeout) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return Outcome(False, f"Prometheus at {spec.label} unreachable: {reason}")
    if data.get("status") != "success":
        return Outcome(False, f"Prometheus query failed: {data.get('error', data)}")
    values = _values(data.get("data") or {})
    if not values:  # a new revision's series need a scrape or two to appear
        return Outcome(False, f"query `{spec.query_label}` returned no data yet", pending=True)
    query = spec.query_label
    for value in values:
        if spec.below is not None and not value < spec.below:
            return Outcome(False, f"query `{query}` = {value:g}, not below {spec.below:g}")
        if spec.above is not None and not value > spec.above:
            return Outcome(False, f"query `{query}` = {value:g}, not above {spec.above:g}")
    if spec.below is None and spec.above is None and all(v == 0 for v in values) \
            and (data.get("data") or {}).get("resultType") == "scalar":
        return Outcome(False, f"query `{spec.query_label}` is 0")
    return Outcome(True, f"query `{spec.query_label}` = {', '.join(f'{v:g}' for v in values[:3])}")


def _values(data: dict[str, object]) -> list[float]:
    result = data.get("result")
    if data.get("resultType") == "scalar" and isinstance(result, list):
        return [float(result[1])]
    values: list[float] = []
    for series in result if isinstance(result, list) else []:
        if isinstance(series, dict) and "value" in series:
            values.append(float(series["value"][1]))
        elif isinstance(series, dict) and series.get("values"):
            values.append(float(series["values"][-1][1]))
    return values


class ProbeRunner:
    """Runs one probe at its interval while armed; reports to ``wake``."""

    def __init__(self, spec: GateSpec, check: Callable[[], Outcome],
                 wake: Callable[[], None]) -> None:
        self.spec = spec
        self._check = check
        self._wake = wake
        self._lock = threading.Lock()
        self._armed = threading.Event()
        self._stop = threading.Event()
        self.passes = 0
        self.fails = 0
        self.last = Outcome(False, "not run yet")
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"gate {spec.describe()}")
        self._thread.start()

    @property
    def passed(self) -> bool:
        with self._lock:
            return self.passes >= self.spec.successes

    @property
    def failed(self) -> Outcome | None:
        with self._lock:
            return self.last if self.fails >= self.spec.failures else None

    def arm(self, armed: bool) -> None:
        if armed and not self._armed.is_set():
            self._armed.set()
        elif not armed and self._armed.is_set():
            self._armed.clear()
            with self._lock:
                self.passes = self.fails = 0

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._armed.wait(timeout=0.2):
                continue
            try:
                outcome = self._check()
            except Exception as error:  # a probe must fail the gate, never kill its thread
                outcome = Outcome(False, f"{self.spec.describe()}: {error}")
            if not self._armed.is_set():
                continue
            with self._lock:
                self.last = outcome
                if outcome.pending:
                    self.passes = 0
                else:
                    self.passes, self.fails = ((self.passes + 1, 0) if outcome.ok
                                               else (0, self.fails + 1))
            self._wake()
            self._stop.wait(self.spec.interval)

    def stop(self) -> None:
        self._stop.set()
        self._armed.set()
