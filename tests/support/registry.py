"""A real Docker registry (distribution 2.8, Debian's ``docker-registry``) on loopback.

Docker trusts 127.0.0.0/8 without TLS, so the engine pushes to and pulls from it directly.
Storage is a directory that survives ``stop()``/``start()``, so a test can take the registry
away (``with registry.down(): ...``) and get the same content back afterwards.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .helpers import free_port, http_get, unique_name

_MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


def registry_binary() -> str | None:
    """Path of ``docker-registry``, or None when it is not installed."""
    return shutil.which("docker-registry")


class Registry:
    """One ``docker-registry serve`` process on ``127.0.0.1:<port>``."""

    def __init__(self, workdir: Path, *, binary: str = "docker-registry") -> None:
        self.workdir = workdir
        self.storage = workdir / "storage"
        self.config_path = workdir / "config.yml"
        self.log_path = workdir / "registry.log"
        self.binary = binary
        self.port = 0
        # Sent back in a response header: proves /v2/ is answered by *this* process, not by
        # another one that took the port in between.
        self.instance = unique_name("crt-registry")
        self._process: subprocess.Popen[bytes] | None = None
        #: Seconds the last ``start()`` took until ``/v2/`` answered.
        self.last_start_seconds = 0.0

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def ref(self, repo: str, tag: str) -> str:
        """``<host>/<repo>:<tag>``."""
        return f"{self.host}/{repo}:{tag}"

    def new_repo(self, stem: str = "app") -> str:
        """A repository name no other test of this session uses."""
        return unique_name(stem, hex_chars=6)

    def start(self, *, timeout: float = 20.0) -> None:
        """Start (or restart, on the same port and storage) and wait until ``/v2/`` answers."""
        if self.running:
            return
        first_start = self.port == 0
        attempts = 3 if first_start else 1
        for attempt in range(attempts):
            if first_start:
                self.port = free_port()
            self._write_config()
            try:
                self._spawn_and_wait(timeout)
                return
            except RuntimeError:
                # Another process may have taken the port between probe and bind: try another.
                if attempt == attempts - 1:
                    raise

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the process; content stays in storage. Returns once the port is closed."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)

    @contextlib.contextmanager
    def down(self) -> Iterator[Registry]:
        """Stop the registry for the ``with`` block, start it again afterwards."""
        self.stop()
        try:
            yield self
        finally:
            self.start()

    def is_ready(self) -> bool:
        answer = http_get(f"{self.url}/v2/", timeout=1.0)
        marks = {key.lower(): value for key, value in answer.headers.items()}
        return answer.status == 200 and marks.get("x-crt-registry") == self.instance

    def digest(self, repo: str, tag: str) -> str | None:
        """The manifest digest ``repo:tag`` points to right now, or None if there is none."""
        answer = http_get(
            f"{self.url}/v2/{repo}/manifests/{tag}", headers={"Accept": _MANIFEST_TYPES}
        )
        if answer.status != 200:
            return None
        for key, value in answer.headers.items():
            if key.lower() == "docker-content-digest":
                return value
        return None

    def tags(self, repo: str) -> list[str]:
        """Tags of ``repo`` (empty when the repository does not exist)."""
        answer = http_get(f"{self.url}/v2/{repo}/tags/list")
        if answer.status != 200:
            return []
        tags: list[str] = json.loads(answer.body).get("tags") or []
        return sorted(tags)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _write_config(self) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        # JSON is YAML: no YAML writer needed for the registry's config file.
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                "secret": self.instance,
                "headers": {"X-Crt-Registry": [self.instance]},
            },
            "health": {"storagedriver": {"enabled": False}},
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    def _spawn_and_wait(self, timeout: float) -> None:
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if not self.running:
                self._process = None
                raise RuntimeError(f"docker-registry exited at start:\n{self.log_tail()}")
            if self.is_ready():
                self.last_start_seconds = time.monotonic() - began
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"docker-registry did not answer on {self.host} within {timeout:g}s:\n{self.log_tail()}"
        )
