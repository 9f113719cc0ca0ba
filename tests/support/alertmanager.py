"""A real Alertmanager (Debian's ``prometheus-alertmanager``, 0.25) on loopback, for the
alertmanager gate and the ``alertmanager-api`` webhook.

Each instance has its own config, storage and free port; ``--cluster.listen-address=`` (empty)
turns gossip off, so it opens no second port and never looks for peers. Alerts are injected
with ``POST /api/v2/alerts`` and silenced with ``POST /api/v2/silences``, as a user's
Prometheus and on-call engineer would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .helpers import free_port, http_get

#: Its route sends every alert to a receiver that notifies nobody.
CONFIG = {
    "route": {"receiver": "nobody", "group_wait": "0s", "group_interval": "1s"},
    "receivers": [{"name": "nobody"}],
}


def alertmanager_binary() -> str | None:
    """Path of ``prometheus-alertmanager`` (Debian) or ``alertmanager``, or None."""
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Alertmanager:
    """One Alertmanager process on ``127.0.0.1:<port>``."""

    def __init__(self, workdir: Path, *, binary: str = "prometheus-alertmanager",
                 webhook: str | None = None) -> None:
        self.workdir = workdir
        self.binary = binary
        #: Where its one receiver sends notifications (a loopback URL), if anywhere.
        self.webhook = webhook
        self.port = 0
        self.config_path = workdir / "alertmanager.yml"
        self.log_path = workdir / "alertmanager.log"
        self._process: subprocess.Popen[bytes] | None = None
        #: Seconds the last ``start()`` took until ``/-/ready`` answered.
        self.last_start_seconds = 0.0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: what an alertmanager gate points at."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 30.0) -> None:
        """Start (or restart, on the same port and storage) and wait for ``/-/ready``."""
        if self.running:
            return
        if self.port == 0:
            self.port = free_port()
        config: dict[str, Any] = json.loads(json.dumps(CONFIG))
        if self.webhook is not None:
            config["receivers"][0]["webhook_configs"] = [
                {"url": self.webhook, "send_resolved": True}]
        self.config_path.write_text(json.dumps(config))  # JSON is YAML
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.binary, f"--config.file={self.config_path}",
                 f"--storage.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--cluster.listen-address=", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if not self.running:
                self._process = None
                raise RuntimeError(f"alertmanager exited at start:\n{self.log_tail()}")
            if http_get(f"{self.url}/-/ready", timeout=1.0).status == 200:
                self.last_start_seconds = time.monotonic() - began
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"alertmanager not ready within {timeout:g}s:\n{self.log_tail()}")

    def stop(self, *, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    def fire(self, labels: Mapping[str, str], *, annotations: Mapping[str, str] | None = None,
             minutes: float = 10.0) -> None:
        """Inject one active alert (it ends by itself after ``minutes``)."""
        now = datetime.now(UTC)
        self._post("/api/v2/alerts", [{
            "labels": dict(labels), "annotations": dict(annotations or {}),
            "startsAt": iso(now), "endsAt": iso(now + timedelta(minutes=minutes)),
        }])

    def resolve(self, labels: Mapping[str, str]) -> None:
        """End the alert with these labels now (``endsAt`` in the past)."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        self._post("/api/v2/alerts", [{"labels": dict(labels), "startsAt": iso(past),
                                       "endsAt": iso(past)}])

    def silence(self, matchers: Mapping[str, str], *, minutes: float = 10.0) -> str:
        """Silence alerts whose labels equal ``matchers``; the silence id."""
        now = datetime.now(UTC)
        answer = self._post("/api/v2/silences", {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True}
                         for k, v in matchers.items()],
            "startsAt": iso(now), "endsAt": iso(now + timedelta(minutes=minutes)),
            "createdBy": "compose-rollback tests", "comment": "test silence",
        })
        return str(answer["silenceID"])

    def alerts(self, *filters: str, active_only: bool = True) -> list[dict[str, Any]]:
        """``GET /api/v2/alerts`` (active, unsilenced, uninhibited unless ``active_only`` is
        False) matching ``filters``."""
        query: list[tuple[str, str]] = [("filter", f) for f in filters]
        if active_only:
            query += [("active", "true"), ("silenced", "false"), ("inhibited", "false")]
        answer = http_get(f"{self.url}/api/v2/alerts?{urllib.parse.urlencode(query)}")
        if answer.status != 200:
            raise AssertionError(f"GET alerts failed ({answer.status}): {answer.body}")
        result: list[dict[str, Any]] = json.loads(answer.body)
        return result

    def _post(self, path: str, body: object) -> Any:
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def labels_of(alerts: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    return [dict(a.get("labels") or {}) for a in alerts]
