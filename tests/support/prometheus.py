"""A real Prometheus (Debian's ``prometheus``) on loopback, for metrics-gate tests.

It scrapes every second whatever targets a test adds with ``scrape()`` (file-based service
discovery: the targets file is re-read within a second, no restart needed), and the
containers of the compose projects a test names with ``discover()`` (Docker service discovery
on the local engine's unix socket, the way a user's Prometheus finds containers: each series
carries the container's revision label as ``revision``).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .helpers import free_port, http_get, unique_name, wait_for


def prometheus_binary() -> str | None:
    """Path of ``prometheus``, or None when it is not installed."""
    return shutil.which("prometheus")


class Prometheus:
    """One ``prometheus`` process on ``127.0.0.1:<port>``, scrape interval 1 s."""

    def __init__(self, workdir: Path, *, binary: str = "prometheus",
                 alertmanager: str | None = None,
                 rules: list[dict[str, Any]] | None = None) -> None:
        """``rules``: alerting rules (one group, evaluated every second), sent to the
        Alertmanager at ``alertmanager`` (``127.0.0.1:<port>``)."""
        self.workdir = workdir
        self.alertmanager = alertmanager
        self.rules = rules
        self.targets_dir = workdir / "targets"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        self.binary = binary
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        #: Seconds the last ``start()`` took until ``/-/ready`` answered.
        self.last_start_seconds = 0.0
        self._projects: dict[str, tuple[int, str]] = {}

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: what a prometheus gate points at."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, *, timeout: float = 30.0) -> None:
        """Start (or restart, on the same port) and wait until ``/-/ready`` answers."""
        if self.running:
            return
        if self.port == 0:
            self.port = free_port()
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if not self.running:
                self._process = None
                raise RuntimeError(f"prometheus exited at start:\n{self.log_tail()}")
            if http_get(f"{self.url}/-/ready", timeout=1.0).status == 200:
                self.last_start_seconds = time.monotonic() - began
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus not ready within {timeout:g}s:\n{self.log_tail()}")

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

    def scrape(
        self, address: str, *, metrics_path: str = "/cgi-bin/metrics", name: str | None = None
    ) -> str:
        """Scrape ``http://<address><metrics_path>`` every second from now on.

        ``address`` is ``127.0.0.1:<port>`` (a published port). Returns the target's
        ``instance_name`` label (``name`` or a fresh one), to select its series in queries:
        ``app_errors_ratio{instance_name="<name>"}``. Prometheus applies discovery updates
        at most every 5 s (not configurable in 2.42), so the first sample arrives within ~6 s:
        ``wait_scraped(name)`` waits for it.
        """
        if not address.startswith("127."):
            raise ValueError(f"tests only scrape loopback addresses, not {address}")
        label = name or unique_name("target", hex_chars=6)
        entry = [
            {
                "targets": [address],
                "labels": {"__metrics_path__": metrics_path, "instance_name": label},
            }
        ]
        # Write then rename: Prometheus must never read a half-written file.
        staging = self.targets_dir / f".{label}.tmp"
        staging.write_text(json.dumps(entry))
        staging.rename(self.targets_dir / f"{label}.json")
        return label

    def discover(self, project: str, *, port: int = 8080,
                 metrics_path: str = "/cgi-bin/metrics") -> None:
        """Scrape ``<container ip>:<port>`` of every running container of compose project
        ``project``, found through Docker service discovery on the local engine's socket.

        Series get ``service``, ``container`` and ``revision`` (the container's
        ``org.compose-rollback.revision`` label) labels. Containers of other projects on the
        engine are never looked at (the engine filters by the project label). Docker
        discovery refreshes every second; Prometheus applies updates at most every 5 s.
        """
        self._projects[project] = (port, metrics_path)
        self._write_config()
        self._reload()

    def undiscover(self, project: str) -> None:
        """Stop discovering ``project``'s containers."""
        if self._projects.pop(project, None) is not None:
            self._write_config()
            self._reload()

    def _reload(self) -> None:
        if self._process is not None and self.running:
            # SIGHUP re-reads the config; the readiness endpoint stays up meanwhile.
            self._process.send_signal(signal.SIGHUP)

    def forget(self, name: str) -> None:
        """Stop scraping the target ``scrape()`` returned ``name`` for."""
        (self.targets_dir / f"{name}.json").unlink(missing_ok=True)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the ``result`` list of the API answer (empty when nothing matches)."""
        answer = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        if answer.status != 200:
            raise AssertionError(f"query {expr!r} failed ({answer.status}): {answer.body}")
        result: list[dict[str, Any]] = json.loads(answer.body)["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` right now, or None when it has no sample."""
        result = self.query(expr)
        if not result:
            return None
        return float(result[0]["value"][1])

    def wait_scraped(self, name: str, timeout: float = 15.0) -> None:
        """Wait until the target ``name`` has been scraped successfully (``up == 1``)."""
        wait_for(
            lambda: self.value(f'up{{instance_name="{name}"}}') == 1.0,
            timeout,
            0.2,
            what=f"prometheus to scrape {name}",
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _write_config(self) -> None:
        # JSON is YAML: no YAML writer needed.
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [
                {
                    "job_name": "app",
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                },
                *(_docker_job(name, port, path) for name, (port, path) in self._projects.items()),
            ],
        }
        if self.rules:
            rules_path = self.workdir / "rules.yml"
            rules_path.write_text(json.dumps({"groups": [{"name": "test",
                                                          "rules": self.rules}]}))
            config["rule_files"] = [str(rules_path)]
        if self.alertmanager:
            config["alerting"] = {"alertmanagers": [
                {"static_configs": [{"targets": [self.alertmanager]}]}]}
        self.config_path.write_text(json.dumps(config, indent=2))


def _docker_job(project: str, port: int, metrics_path: str) -> dict[str, Any]:
    """A scrape job over one compose project's containers (Docker service discovery)."""
    meta = "__meta_docker_container_label_"
    return {
        "job_name": f"docker-{project}",
        "metrics_path": metrics_path,
        "docker_sd_configs": [{
            "host": "unix:///var/run/docker.sock",
            "refresh_interval": "1s",
            "port": port,
            "filters": [{"name": "label", "values": [f"com.docker.compose.project={project}"]}],
        }],
        "relabel_configs": [
            # one target per container: the port the app listens on, not every exposed one
            {"source_labels": ["__meta_docker_port_private"], "regex": f"{port}|",
             "action": "keep"},
            {"source_labels": [f"{meta}org_compose_rollback_revision"], "target_label": "revision"},
            {"source_labels": [f"{meta}com_docker_compose_service"], "target_label": "service"},
            {"source_labels": ["__meta_docker_container_name"], "regex": "/?(.*)",
             "target_label": "container"},
        ],
    }
