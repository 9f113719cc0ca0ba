"""A second, real Docker engine on this machine, for the remote-engine tests.

``second_engine`` (session) starts its own ``dockerd`` with its own ``--data-root``,
``--exec-root``, ``--pidfile`` and unix socket, all under one temporary directory, and at the
end removes every container on it, stops it and deletes that directory. It is driven only
through its socket (``.host`` = ``unix://…/docker.sock``), never through the default engine.

Why these daemon flags: the two daemons share the kernel and its iptables, and the first one
is in use by other test runs.

- ``--iptables=false --ip-masq=false --ip-forward=false``: this daemon never writes an
  iptables rule or a sysctl; the first daemon's chains and policies stay exactly as they are.
- Its default bridge is one this fixture creates (``crt-br-<hex>``, given with ``--bridge``)
  and deletes. Never ``--bridge=none``: with it dockerd *deletes the interface named
  ``docker0``*, which is the first daemon's (moby ``removeDefaultBridgeInterface``). Compose
  projects get their own user-defined bridges (``br-<id>``, names that cannot clash),
  addressed from ``--default-address-pool``; the pool and the bridge sit on a private /16 that
  no route of this host overlaps (checked at start), so no network of the first daemon is
  shadowed.
- ``--config-file`` is an empty file of ours: ``/etc/docker/daemon.json`` is the first
  daemon's.
- Containers there are never a target of traffic by address: tests reach them with
  ``docker exec`` (healthchecks, exec gates) or through ports published on ``127.0.0.1``,
  which the userland proxy (``docker-proxy``) serves without any iptables rule.
- ``--cgroup-parent``: its containers' cgroups sit apart from the first daemon's (the
  empty parent groups are removed at the end).
- Its own containerd comes with it (dockerd starts one under its exec root).

Images reach it with ``.load(ref)`` (``docker save`` on the default engine, ``docker load``
here) or from the loopback registry (``127.0.0.1`` is the same host for both daemons).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from .helpers import describe, run_command, unique_name
from .prereq import missing

START_SECONDS = 60.0
STOP_SECONDS = 30.0
#: Candidate address blocks: the first that no route of this host overlaps is used (the lower
#: half for the networks of compose projects, a /24 of the upper half for the bridge).
BLOCK_CANDIDATES = ("10.213.0.0/16", "10.214.0.0/16", "10.215.0.0/16", "172.31.0.0/16")
#: Held while a block is chosen and its bridge made, by every test process of this host.
BLOCK_LOCK = Path(tempfile.gettempdir()) / "crt-second-engine.lock"


class SecondEngine:
    """A running second ``dockerd``; ``docker()`` talks to it, ``stop()`` removes it."""

    def __init__(self, root: Path, *, block: ipaddress.IPv4Network) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.pidfile = root / "docker.pid"
        self.log = root / "dockerd.log"
        low, high = block.subnets(prefixlen_diff=1)
        self.pool = str(low)  # networks of compose projects
        self.bridge_address = f"{next(high.subnets(new_prefix=24))[1]}/24"
        self.bridge = unique_name("crt-br", hex_chars=8)  # at most 15 characters
        self._proc: subprocess.Popen[bytes] | None = None
        self._bridge_made = False
        #: Run ``ip`` and ``dockerd`` through this (``nsenter --net=…``: another netns).
        self.prefix: tuple[str, ...] = ()

    @property
    def env(self) -> dict[str, str]:
        """The environment that names this engine (``DOCKER_HOST``)."""
        return {"DOCKER_HOST": self.host}

    def start(self) -> None:
        ip = [*self.prefix, "ip", "link", "add", self.bridge, "type", "bridge"]
        subprocess.run(ip, check=True, capture_output=True)
        self._bridge_made = True
        for step in (["ip", "addr", "add", self.bridge_address, "dev", self.bridge],
                     ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run([*self.prefix, *step], check=True, capture_output=True)
        config = self.root / "daemon.json"
        config.write_text("{}\n")
        args = [*self.prefix, "dockerd", "--config-file", str(config), "--host", self.host,
                "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.pidfile), "--bridge", self.bridge, "--iptables=false",
                "--ip-masq=false", "--ip-forward=false",
                "--default-address-pool", f"base={self.pool},size=24",
                "--cgroup-parent", f"/{self.root.name}", "--log-level", "warn"]
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if self.docker("version", "--format", "{{.Server.Version}}", check=None,
                           timeout=10).returncode == 0:
                return
            time.sleep(0.2)
        tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        missing(f"the second dockerd did not start within {START_SECONDS:g}s: "
                + " | ".join(tail), fix=None)

    def docker(self, *args: str, check: bool | int | None = True, timeout: float = 120.0,
               input_from: subprocess.Popen[bytes] | None = None
               ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this engine only (``-H``; ``DOCKER_CONTEXT`` dropped)."""
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_CONTEXT", "DOCKER_HOST")}
        if input_from is None:
            return run_command(["docker", "-H", self.host, *args], check=check,
                               timeout=timeout, env=env)
        done = subprocess.run(["docker", "-H", self.host, *args], stdin=input_from.stdout,
                              capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(describe(done))
        return done

    def load(self, *refs: str) -> None:
        """Copy images from the default engine: ``docker save | docker -H <this> load``."""
        saver = subprocess.Popen(["docker", "save", *refs], stdout=subprocess.PIPE)
        try:
            self.docker("load", "--quiet", input_from=saver, timeout=300)
        finally:
            if saver.stdout is not None:
                saver.stdout.close()
            assert saver.wait(timeout=60) == 0, f"docker save {refs} failed"

    @contextlib.contextmanager
    def context(self, *, env: Mapping[str, str] | None = None) -> Iterator[str]:
        """A docker context ``crt-<hex>`` whose endpoint is this engine, removed after.

        ``env``: the environment of the docker CLI that will use it (its ``DOCKER_CONFIG``
        says where contexts are kept).
        """
        name = unique_name("crt-ctx")
        base = dict(env) if env is not None else dict(os.environ)
        run_command(["docker", "context", "create", name, "--docker", f"host={self.host}"],
                    env=base, check=True)
        try:
            yield name
        finally:
            run_command(["docker", "context", "rm", "--force", name], env=base, check=None)

    def stop(self) -> None:
        """Remove every container here, stop the daemon, delete its directory."""
        if self._proc is not None and self._proc.poll() is None:
            ids = self.docker("ps", "--all", "--quiet", check=None, timeout=30).stdout.split()
            if ids:
                self.docker("rm", "--force", *ids, check=None, timeout=120)
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=STOP_SECONDS)
        for mount in _mounts_under(self.root):  # a killed daemon can leave overlay mounts
            subprocess.run(["umount", "--lazy", mount], check=False, capture_output=True)
        if not _mounts_under(self.root):
            shutil.rmtree(self.root, ignore_errors=True)
        if self._bridge_made:
            subprocess.run([*self.prefix, "ip", "link", "delete", self.bridge, "type", "bridge"],
                           check=False, capture_output=True)
            self._bridge_made = False
        for group in Path("/sys/fs/cgroup").glob(f"*/{self.root.name}"):
            # Empty once the containers are gone; rmdir never removes a group in use.
            for sub in sorted(group.glob("**/"), key=lambda d: len(d.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()


def reclaim_orphan_bridges() -> list[str]:
    """Delete the ``crt-br-*`` bridges no running dockerd uses (``--bridge NAME`` in its
    command line): those of a test run killed before its clean-up. Each took a candidate
    block's route, and three of them left the remote-engine tests no block at all. Called
    under the block lock, which a fixture holds until its dockerd runs, so a bridge seen here
    is either in use or left over."""
    links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True,
                           text=True, check=False).stdout.splitlines()
    names = {line.split(":")[1].strip().split("@")[0] for line in links if line.count(":") > 1}
    ours = sorted(name for name in names if name.startswith("crt-br-"))
    if not ours:
        return []
    in_use: set[str] = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            words = cmdline.read_bytes().split(b"\0")
            if b"--bridge" in words[:-1]:
                in_use.add(words[words.index(b"--bridge") + 1].decode(errors="replace"))
    orphans = [name for name in ours if name not in in_use]
    for name in orphans:
        subprocess.run(["ip", "link", "delete", name, "type", "bridge"], check=False,
                       capture_output=True)
    return orphans


def free_block(candidates: Sequence[str] = BLOCK_CANDIDATES) -> ipaddress.IPv4Network | None:
    """The first candidate block that overlaps no IPv4 route of this host."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True, check=False).stdout.splitlines()
    taken = []
    for line in routes:
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole") and len(line.split()) > 1:
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            if word != "default":
                taken.append(ipaddress.ip_network(word, strict=False))
    for candidate in candidates:
        network = ipaddress.IPv4Network(candidate)
        if not any(network.overlaps(route) for route in taken):
            return network
    return None


def _mounts_under(root: Path) -> list[str]:
    """Mount points at or below ``root``, deepest first (``/proc/self/mountinfo``)."""
    found = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(root) or point.startswith(f"{root}/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


@pytest.fixture(scope="session")
def second_engine() -> Iterator[SecondEngine]:
    """A second dockerd of our own (see the module docstring); skip locally, fail under CI."""
    if shutil.which("dockerd") is None:
        missing("dockerd is not installed (Debian package docker.io)")
    if os.geteuid() != 0:
        missing("a second dockerd needs root", fix=None)
    with open(BLOCK_LOCK, "a") as lock:
        # Two test processes (xdist workers, other runs) must not both pick the same free
        # block: the choice and the bridge that makes it taken (its route) happen under a lock.
        fcntl.flock(lock, fcntl.LOCK_EX)
        reclaim_orphan_bridges()
        block = free_block()
        if block is None:
            missing(f"every candidate address block {BLOCK_CANDIDATES} overlaps a route here",
                    fix=None)
        # Short and under /tmp: a unix socket path has a 108-byte limit.
        root = Path(tempfile.mkdtemp(prefix="crt-engine-", dir="/tmp"))
        engine = SecondEngine(root, block=block)
        try:
            engine.start()
        except BaseException:
            engine.stop()
            raise
    try:
        yield engine
    finally:
        engine.stop()
