"""A real HAProxy in front of a test project's service: image, configuration, running proxy.

The image is built ``FROM scratch`` from the host's Debian ``haproxy`` (2.6): the binary, every
library ``ldd`` lists and the loader, at the paths ``ldd`` gives; nothing is pulled. The proxy
runs as its own compose project (``<app project>-lb``) that joins the app project's network as
``external``, so deploys of the app (ours or plain compose) never recreate or stop the proxy.
It finds the service's containers through Docker's embedded DNS and health-checks each one
itself; it publishes one port, ``127.0.0.1:<port chosen by the engine>``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .compose_project import ComposeProject
from .helpers import docker, http_get, run_command, wait_for

SESSION_LABEL = "org.compose-rollback.test.session"
#: Where the proxy container reads its configuration.
CONFIG_PATH = "/usr/local/etc/haproxy/haproxy.cfg"
#: The Lua task that keeps a server out of rotation until it has passed a check (see there).
CHECKED_FIRST = Path(__file__).resolve().parent / "proxy" / "checked-first.lua"
CHECKED_FIRST_PATH = "/usr/local/etc/haproxy/checked-first.lua"
#: Path on the proxy's own port that serves HAProxy's statistics (``;csv`` for CSV).
STATS_PATH = "/crt-haproxy/stats"
#: Response header naming the backend slot and address that answered: ``app3 172.18.0.4:8080``.
SERVER_HEADER = "X-Crt-Server"
LISTEN_PORT = 8080
_BUILD_ENV = {"DOCKER_BUILDKIT": "0"}
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def haproxy_binary() -> Path | None:
    """The host's haproxy (``CRT_HAPROXY`` overrides ``/usr/sbin/haproxy``), or None."""
    for candidate in filter(None, [os.environ.get("CRT_HAPROXY"), "/usr/sbin/haproxy"]):
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def parse_ldd(text: str) -> list[Path]:
    """The files ``ldd`` resolved: ``libx.so => /lib/libx.so (0x...)`` and the loader's own
    ``/lib64/ld-linux-x86-64.so.2 (0x...)`` line; the vDSO has no file and is left out."""
    found = [Path(match.group(1)) for match in map(_LDD_PATH.search, text.splitlines()) if match]
    return list(dict.fromkeys(found))


def haproxy_config(
    *,
    service: str,
    port: int,
    slots: int = 10,
    health_path: str = "/health/",
    listen: int = LISTEN_PORT,
    inter: str = "500ms",
    fastinter: str = "250ms",
    checked_first: bool = True,
) -> str:
    """haproxy.cfg sending ``:listen`` to up to ``slots`` containers of ``service:port``.

    Why these figures:
    - resolvers: Docker's DNS (127.0.0.11) answers with every running container of the
      service, healthy or not; re-resolved every 500 ms and a vanished address held for 1 s
      only, so a removed container leaves its slot within ~1.5 s and a new one is seen as fast.
    - health: each address is checked by HAProxy itself (Docker's health is not in DNS).
      ``inter 500ms rise 2 fall 2`` takes a failing server out within ~1 s and brings a DOWN
      one back after two passes; ``fastinter 250ms`` speeds the checks while a server changes
      state. Shorter intervals bought nothing measurable (250/100 ms let as many requests
      through to a new broken container as 500/250 ms) and cost a CGI fork per check. The
      test app's ``/health`` is a directory that busybox httpd redirects to ``/health/``, and
      HAProxy counts a 3xx as a pass: check ``/health/`` and expect exactly 200.
    - ``checked_first`` (default): HAProxy 2.6 puts a server that just got an address in
      rotation *before* its first check (3.1 added ``init-state down`` for that), so a new
      container that serves but fails its check got 0-3 of 80 requests in our runs. The Lua
      task ``proxy/checked-first.lua`` keeps a server at weight 0 until a check has passed at
      its current address; from then on rise/fall decide as usual (a single slow check on a
      loaded machine must not take every server out at once). ``checked_first=False`` is
      stock 2.6.
    - ``retries 3`` + ``option redispatch 1`` + ``retry-on all-retryable-errors``: a request
      that reaches a container that just stopped (refused, reset, empty answer, 5xx) is sent
      again to another server instead of failing (a GET is safe to replay). An app's own 5xx is
      retried too: the proxy is for rollout tests, not for testing an app's error codes.
    - statistics on the proxy's own port (``stats show-legends`` adds each server's address),
      so tests see which containers are in rotation without a second published port.
    - timeouts: ``connect 1s`` (a bridge answers at once; a gone address would otherwise stall
      the retry), ``server 2s`` (the test app answers in milliseconds; four tries stay under
      the load generator's 5 s), ``check 2s`` (a check answered slowly on a loaded machine
      is not a failure; the broken test releases answer 500 or refuse at once).
    """
    text = f"""\
        global
            log stdout format raw local0 info
            nbthread 1
            hard-stop-after 5s
            {f"lua-load {CHECKED_FIRST_PATH}" if checked_first else ""}

        resolvers docker
            nameserver dns 127.0.0.11:53
            accepted_payload_size 8192
            resolve_retries 3
            timeout resolve 500ms
            timeout retry 250ms
            hold valid 1s
            hold obsolete 1s
            hold nx 1s
            hold refused 1s
            hold timeout 1s
            hold other 1s

        defaults
            mode http
            log global
            option httplog
            option dontlognull
            timeout connect 1s
            timeout client 10s
            timeout server 2s
            timeout queue 2s
            timeout http-request 5s
            timeout check 2s
            retries 3
            option redispatch 1
            retry-on all-retryable-errors

        frontend web
            bind :{listen}
            stats enable
            stats uri {STATS_PATH}
            stats show-legends
            default_backend app

        backend app
            balance roundrobin
            option httpchk GET {health_path}
            http-check expect status 200
            http-response set-header {SERVER_HEADER} "%s %si:%sp"
            default-server check inter {inter} fastinter {fastinter} rise 2 fall 2
            default-server resolvers docker init-addr none resolve-prefer ipv4
            server-template app {slots} {service}:{port}
        """
    return textwrap.dedent(text)


@dataclass(frozen=True)
class ServerState:
    """One ``server-template`` slot as HAProxy's statistics show it."""

    name: str
    #: ``UP`` (checked, in rotation), ``UP 1/2`` (one check short of full health: going
    #: down, or just got its address and not checked yet), ``DRAIN`` (weight 0: not checked
    #: at this address yet, under ``checked_first``), ``DOWN`` / ``DOWN 1/2`` (the latter
    #: going up), ``MAINT (resolution)`` (no address).
    status: str
    #: ``ip:port``, or ``""`` for a slot without an address.
    address: str

    @property
    def in_rotation(self) -> bool:
        """HAProxy sends this server requests now (``UP`` or ``UP x/y``; weight 0 shows as
        ``DRAIN``)."""
        return self.status.startswith("UP")

    @property
    def up(self) -> bool:
        """In rotation at full health. Not ``UP 1/2``: a server that just got an address
        shows that for a moment before its first check (and ``checked_first`` takes it out),
        and so does one whose last check failed."""
        return self.status == "UP"


def parse_stats(text: str, *, backend: str = "app") -> list[ServerState]:
    """The servers of ``backend`` in HAProxy's CSV statistics (header line ``# pxname,...``)."""
    rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
    return [
        ServerState(name=row["svname"], status=row["status"], address=row.get("addr") or "")
        for row in rows
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
    ]


class HaproxyImage:
    """The FROM-scratch HAProxy image of one test session: ``crt-haproxy-<session>:<version>``."""

    def __init__(self, *, workdir: Path, binary: Path, session: str) -> None:
        self.workdir = workdir
        self.binary = binary
        self.session = session
        self.ref = f"crt-haproxy-{session}:2.6"
        self._built = False

    def build(self) -> str:
        """Build the image (once) and return its reference."""
        if self._built:
            return self.ref
        rootfs = self.workdir / "rootfs"
        files = [self.binary, *parse_ldd(run_command(["ldd", str(self.binary)]).stdout)]
        for source in files:
            target = rootfs / source.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source.resolve(), target)  # the file itself, not the symlink
        (rootfs / CONFIG_PATH.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (self.workdir / "Dockerfile").write_text(
            textwrap.dedent(f"""\
                FROM scratch
                LABEL {SESSION_LABEL}="{self.session}"
                LABEL org.compose-rollback.test.fixture="crt-haproxy"
                COPY rootfs/ /
                EXPOSE {LISTEN_PORT}
                ENTRYPOINT ["{self.binary}", "-db", "-f", "{CONFIG_PATH}"]
                """)
        )
        # --no-cache: with its unique session label no step could come from the cache, and
        # the engine's legacy builder probes it for a step on `FROM scratch` by reading every
        # parentless image of the engine: one that another test removes at that moment fails
        # this build with "unable to find image" (seen once in a parallel run, from the bench
        # smoke's build).
        build = ["build", "--quiet", "--no-cache", "--rm", "--force-rm", "--tag", self.ref,
                 str(self.workdir)]
        docker(*build, env={**os.environ, **_BUILD_ENV}, timeout=300)
        self._built = True
        return self.ref

    def cleanup(self) -> None:
        """Remove this session's proxy containers (if a test left one) and the image."""
        label = f"label={SESSION_LABEL}={self.session}"
        stray = docker("ps", "--all", "--quiet", "--filter", label, check=None).stdout.split()
        if stray:
            docker("rm", "--force", *stray, check=None)
        if self._built:
            docker("image", "rm", "--force", self.ref, check=None)


class Proxy:
    """One running HAProxy in front of ``service`` of an app project."""

    def __init__(self, lb: ComposeProject, *, service: str) -> None:
        self.lb = lb
        self.service = service
        self.port = lb.port("lb", LISTEN_PORT)

    @property
    def name(self) -> str:
        """The proxy's own compose project."""
        return self.lb.name

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def servers(self) -> list[ServerState]:
        """Every slot with an address, as HAProxy sees it now."""
        answer = http_get(self.url(f"{STATS_PATH};csv"), timeout=2.0)
        if answer.status != 200:
            raise AssertionError(f"HAProxy statistics: {answer.status} {answer.error}")
        return [server for server in parse_stats(answer.body) if server.address]

    def up_addresses(self) -> set[str]:
        """``ip:port`` of every server HAProxy sends requests to now."""
        return {server.address for server in self.servers() if server.in_rotation}

    def wait_up(self, addresses: Iterable[str] | int, *, timeout: float = 20.0) -> set[str]:
        """Wait until the servers in rotation are exactly these (a set of ``ip:port``; empty:
        none at all) or this many, each at full health (``UP``); return their addresses."""
        wanted = addresses if isinstance(addresses, int) else set(addresses)
        found: set[str] = set()

        def matches() -> bool:
            nonlocal found
            rotation = [server for server in self.servers() if server.in_rotation]
            found = {server.address for server in rotation}
            size = len(found) == wanted if isinstance(wanted, int) else found == wanted
            return size and all(server.up for server in rotation)

        wait_for(matches, timeout, 0.1, what=f"HAProxy servers in rotation to be {wanted}")
        return found

    def logs(self) -> str:
        """The proxy's log (one line per request), for assertion messages."""
        return self.lb.compose("logs", "--no-color", "lb", check=None).stdout

    def cleanup(self) -> None:
        self.lb.cleanup()


def container_addresses(
    app: ComposeProject, service: str, *, port: int = LISTEN_PORT, network: str | None = None
) -> set[str]:
    """``ip:port`` of the running containers of ``service`` on the app's network, as HAProxy
    names them (to compare with ``Proxy.up_addresses()``)."""
    network = network or f"{app.name}_default"
    found: set[str] = set()
    for item in app.containers(service):
        if item["State"].get("Status") != "running":
            continue
        settings = (item["NetworkSettings"]["Networks"] or {}).get(network) or {}
        if settings.get("IPAddress"):
            found.add(f"{settings['IPAddress']}:{port}")
    return found


class Proxies:
    """The ``haproxy`` fixture: starts proxies in front of app projects, removes them after."""

    def __init__(self, *, image: HaproxyImage, workdir: Path) -> None:
        self.image = image
        self.workdir = workdir
        self._started: list[Proxy] = []

    def start(
        self,
        app: ComposeProject,
        *,
        service: str = "web",
        port: int = LISTEN_PORT,
        network: str | None = None,
        slots: int = 10,
        health_path: str = "/health/",
        checked_first: bool = True,
    ) -> Proxy:
        """Start HAProxy in front of ``service:port`` of ``app``, on its network (default
        ``<app>_default``, which must exist: start the proxy after the app's first ``up``).

        ``service`` is the DNS name HAProxy resolves: the compose service, or any network
        alias. ``checked_first=False`` is stock HAProxy 2.6 (see ``haproxy_config``).
        """
        network = network or f"{app.name}_default"
        if docker("network", "inspect", network, check=None).returncode != 0:
            raise AssertionError(f"network {network} does not exist: run the app's up first")
        suffix = f"-lb{len(self._started) + 1}" if self._started else "-lb"
        lb = ComposeProject(self.workdir, name=f"{app.name}{suffix}")
        config = haproxy_config(
            service=service,
            port=port,
            slots=slots,
            health_path=health_path,
            checked_first=checked_first,
        )
        lb.write_file("haproxy.cfg", config)
        lb.write_file(CHECKED_FIRST.name, CHECKED_FIRST.read_text())
        lb.write(f"""
            services:
              lb:
                image: {self.image.build()}
                pull_policy: never
                ports: ["127.0.0.1::{LISTEN_PORT}"]
                volumes:
                  - ./haproxy.cfg:{CONFIG_PATH}:ro
                  - ./{CHECKED_FIRST.name}:{CHECKED_FIRST_PATH}:ro
                networks: [app]
            networks:
              app:
                name: {network}
                external: true
            """)
        proxy: Proxy | None = None
        try:
            lb.compose("up", "--detach")
            proxy = Proxy(lb, service=service)
            self._started.append(proxy)
            stats = proxy.url(f"{STATS_PATH};csv")
            wait_for(lambda: http_get(stats).status == 200, 10, what="HAProxy to answer")
        except BaseException:
            if proxy is None:
                lb.cleanup()
            raise
        return proxy

    def cleanup(self) -> None:
        """Remove every proxy started (before the app projects: they hold their networks)."""
        for proxy in reversed(self._started):
            proxy.cleanup()
        self._started.clear()
