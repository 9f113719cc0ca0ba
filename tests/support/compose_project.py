"""A throw-away compose project: its own directory, a unique name, exact clean-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .helpers import clean_env, docker, run_command, unique_name
from .jsonschema_check import check_output

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"

Container = dict[str, Any]


class ComposeProject:
    """A compose project named ``crt-<8 hex>`` in its own directory.

    ``run()`` drives our CLI, ``compose()`` plain ``docker compose``; both run in ``dir`` with
    ``-p name``. ``cleanup()`` removes exactly what belongs to the project.
    """

    def __init__(self, parent: Path, *, name: str | None = None) -> None:
        self.name = name or unique_name()
        self.dir = parent / self.name
        self.dir.mkdir(parents=True)

    # -- files ------------------------------------------------------------------------------

    def write(self, compose_text: str, name: str = "compose.yaml") -> Path:
        """Write a compose file (dedented, so tests can indent inline YAML) and return it."""
        return self.write_file(name, textwrap.dedent(compose_text).lstrip("\n"))

    def write_file(self, name: str, text: str) -> Path:
        """Write any file relative to the project directory (``.env``, ``app/Dockerfile``)."""
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    @property
    def state_dir(self) -> Path:
        """Where our CLI keeps this project's revisions: ``<dir>/.rollback/<name>/``."""
        return self.dir / ".rollback" / self.name

    # -- commands ---------------------------------------------------------------------------

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool | int | None = None,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run our CLI: ``python -m compose_rollback -p <name> *args`` in ``dir``.

        The working tree's package is used (``PYTHONPATH`` starts with the repository root).
        ``check``: ``None`` accepts any exit code, ``True`` expects 0, an ``int`` that code;
        a mismatch raises ``CommandError`` showing stdout and stderr. With ``--json``, a result
        (exit 0, 1 or 3) must follow its schema (``support.jsonschema_check``).
        """
        python_path = os.pathsep.join(
            filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
        )
        result = run_command(
            [sys.executable, "-m", "compose_rollback", "-p", self.name, *args],
            cwd=self.dir,
            env=clean_env({"PYTHONPATH": python_path, **(env or {})}),
            check=check,
            timeout=timeout,
        )
        check_output(args, result)  # a --json result follows its schema, in every test
        return result

    def compose(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool | int | None = True,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run plain ``docker compose -p <name> *args`` in ``dir`` (checked by default)."""
        return run_command(
            ["docker", "compose", "-p", self.name, *args],
            cwd=self.dir,
            env=clean_env(env),
            check=check,
            timeout=timeout,
        )

    # -- inspection -------------------------------------------------------------------------

    def containers(self, service: str | None = None) -> list[Container]:
        """``docker inspect`` of the project's containers (running or not), optionally of one
        service, ordered by service and container number."""
        filters = ["--filter", f"label={PROJECT_LABEL}={self.name}"]
        if service is not None:
            filters += ["--filter", f"label={SERVICE_LABEL}={service}"]
        ids = docker("ps", "--all", "--quiet", "--no-trunc", *filters).stdout.split()
        if not ids:
            return []
        # A container can vanish between ps and inspect (compose recreating it): tolerate it.
        found = docker("inspect", *ids, check=None).stdout.strip() or "[]"
        items: list[Container] = json.loads(found)
        return sorted(items, key=_container_order)

    def container(self, service: str) -> Container:
        """The one container of ``service`` (fails when there is not exactly one)."""
        found = self.containers(service)
        if len(found) != 1:
            names = [item.get("Name") for item in found]
            raise AssertionError(f"expected one container of {service!r}, found {names}")
        return found[0]

    def health(self, service: str) -> str:
        """``starting``/``healthy``/``unhealthy``, ``none`` without healthcheck, or the state
        (``exited``, ``restarting``...) when the container is not running."""
        state = self.container(service)["State"]
        if state.get("Status") != "running":
            return str(state.get("Status"))
        return str((state.get("Health") or {}).get("Status", "none"))

    def port(self, service: str, private: int = 8080) -> int:
        """The host port on 127.0.0.1 that publishes ``private``/tcp of ``service``."""
        ports = self.container(service)["NetworkSettings"]["Ports"] or {}
        for binding in ports.get(f"{private}/tcp") or []:
            if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                return int(binding["HostPort"])
        raise AssertionError(f"{service}: {private}/tcp is not published on 127.0.0.1: {ports}")

    def url(self, service: str, path: str = "/", private: int = 8080) -> str:
        """``http://127.0.0.1:<published port><path>`` of ``service``."""
        return f"http://127.0.0.1:{self.port(service, private)}{path}"

    # -- teardown ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove the project's containers, networks, volumes and retention tags.

        Everything compose (or our CLI through it) created carries the project label, so it
        goes by label and id: containers first (killed, with their anonymous volumes), then
        networks and volumes, then images compose built (also labelled) and every image tag
        containing ``rollback-<name>`` or named ``<name>-*`` (compose's default name for built
        images). No ``compose down``: it would find the same objects by the same label, after
        loading a compose file that may be broken or gone. The five listings run side by side,
        and so do the network and volume removals (~0.3 s less per test than ``down`` and one
        listing after the other).
        """
        label = f"label={PROJECT_LABEL}={self.name}"

        def ids(*listing: str) -> list[str]:
            return docker(*listing, "--quiet", "--filter", label, check=None).stdout.split()

        def remove(kind: str, found: list[str], *flags: str) -> None:
            if found:
                docker(kind, "rm", "--force", *flags, *found, check=None)

        with ThreadPoolExecutor(max_workers=5) as pool:
            containers = pool.submit(ids, "ps", "--all")
            networks = pool.submit(ids, "network", "ls")
            volumes = pool.submit(ids, "volume", "ls")
            refs = pool.submit(_image_refs)
            # Images compose built for this project carry its label (and a unique name): ours.
            built = pool.submit(ids, "image", "ls", "--no-trunc")
            remove("container", containers.result(), "--volumes")
            done = [pool.submit(remove, "network", networks.result()),
                    pool.submit(remove, "volume", volumes.result())]
            for future in done:
                future.result()
            tags = [ref for ref in refs.result() if self._owns_tag(ref)]
        if tags:
            docker("image", "rm", *tags, check=None)
        remove("image", sorted(set(built.result())))

    def _owns_tag(self, ref: str) -> bool:
        repository, _, tag = ref.rpartition(":")
        return f"rollback-{self.name}" in tag or repository.split("/")[-1].startswith(
            f"{self.name}-"
        )


def _image_refs() -> list[str]:
    listing = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=None)
    return [line for line in listing.stdout.split() if not line.endswith(":<none>")]


def _container_order(item: Container) -> tuple[str, int, str]:
    labels: dict[str, str] = item.get("Config", {}).get("Labels") or {}
    number = labels.get("com.docker.compose.container-number", "0")
    return (
        labels.get(SERVICE_LABEL, ""),
        int(number) if number.isdigit() else 0,
        str(item.get("Name", "")),
    )
