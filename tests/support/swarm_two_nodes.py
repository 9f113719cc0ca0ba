"""A 2-node Docker Swarm on this machine: the default engine (manager) and a worker ``dockerd``
of our own in a network namespace of our own.

``two_node_swarm`` (session) builds, on top of the session's ``swarm`` (the default engine, a
manager advertised on loopback, created only if the engine's swarm was inactive):

- a network namespace ``crt-ns-<hex>`` with its ``lo`` up and one end of a veth pair
  (``crt-vh-<hex>`` on the host, ``crt-vn-<hex>`` inside) addressed from a private /30 that
  overlaps no route of this host (checked, as ``second_engine`` checks its block). The worker
  advertises its end of it to the swarm; nothing else of the host's network changes;
- a second ``dockerd`` (``support.second_engine.SecondEngine``: its own data root, exec root,
  pid file, containerd, cgroup parent and bridge) started with ``nsenter --net`` into that
  namespace: the bridge it gets is inside the namespace, its unix socket is a file on the
  host's filesystem, so the tests drive it from here;
- loopback forwards (``LoopbackForward``): inside the namespace ``127.0.0.1:2377`` (the
  manager's advertised address) and ``127.0.0.1:<registry port>`` are served by relays to the
  same addresses on the host. A process may hold sockets of two namespaces: the listening
  socket is made by a thread that entered the namespace (``setns``), the outgoing one in the
  host's. So every node reaches the manager and the loopback registry under the *same* names,
  and an image is the same ``127.0.0.1:<port>/<repo>@sha256:…`` on both (127.0.0.0/8 is an
  insecure registry to every engine by default: no ``--insecure-registry`` needed);
- the worker joined with the swarm's worker token; the manager sees it ``ready``.

At the end: the worker leaves, its node is removed from the manager's list, the daemon stops,
the forwards close, the namespace and veth pair go and every file is deleted; the manager's
swarm is left as the ``swarm`` fixture found it.

What works and what does not (measured here): the control plane (join, scheduling, task state
and health reported to the manager, image pulls from the registry) works over the relays.
The data plane of overlay networks between the nodes does not: the manager is advertised on
127.0.0.1, the address gossip (7946/tcp+udp) and VXLAN (4789/udp) of the other node are sent
to, and 127.0.0.1 inside the namespace is the namespace's own loopback. Tasks on the worker are
attached to the stack's overlay network on their node, but do not reach tasks on the manager.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .helpers import docker, unique_name, wait_for
from .prereq import missing
from .registry import Registry
from .second_engine import SecondEngine, free_block
from .swarm import Swarm

CLONE_NEWNET = 0x40000000
JOIN_SECONDS = 60.0


class Netns:
    """A network namespace with ``lo`` up and a veth pair to the host on a private /30."""

    def __init__(self, link: ipaddress.IPv4Network) -> None:
        tag = unique_name("n", hex_chars=8).removeprefix("n-")
        self.name = f"crt-ns-{tag}"
        self.host_end, self.inner_end = f"crt-vh-{tag}", f"crt-vn-{tag}"  # 15 characters
        first, second = list(link.hosts())
        self.host_address, self.address = str(first), str(second)
        self.prefixlen = link.prefixlen
        self.path = Path("/run/netns") / self.name
        self._made = False

    @property
    def enter(self) -> tuple[str, ...]:
        """Run a command in the namespace (network only: mounts and cgroups stay the host's,
        which ``ip netns exec`` would not keep: it remounts ``/sys``, and the cgroup v1
        hierarchies below it with it)."""
        return ("nsenter", f"--net={self.path}")

    def create(self) -> None:
        self._made = True
        steps = [
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.host_end, "type", "veth", "peer", "name", self.inner_end],
            ["ip", "link", "set", self.inner_end, "netns", self.name],
            ["ip", "addr", "add", f"{self.host_address}/{self.prefixlen}", "dev", self.host_end],
            ["ip", "link", "set", self.host_end, "up"],
            [*self.enter, "ip", "link", "set", "lo", "up"],
            [*self.enter, "ip", "addr", "add", f"{self.address}/{self.prefixlen}",
             "dev", self.inner_end],
            [*self.enter, "ip", "link", "set", self.inner_end, "up"],
        ]
        for step in steps:
            subprocess.run(step, check=True, capture_output=True)

    def delete(self) -> None:
        if not self._made:
            return
        # Deleting the namespace deletes the inner end and with it the pair; the host end
        # is deleted by name first in case a process still holds the namespace.
        subprocess.run(["ip", "link", "delete", self.host_end], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
        self._made = False


def _listen_in(netns: Path, address: tuple[str, int]) -> socket.socket:
    """A listening TCP socket in the namespace ``netns`` (made by a thread that enters it:
    ``setns`` moves only the calling thread, and that thread then ends)."""
    made: list[socket.socket] = []
    errors: list[BaseException] = []

    def inside() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(netns) as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            made.append(socket.create_server(address))
        except BaseException as problem:  # handed to the caller's thread
            errors.append(problem)

    thread = threading.Thread(target=inside, name=f"setns {netns.name}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return made[0]


@dataclass
class LoopbackForward:
    """Inside ``netns``, ``127.0.0.1:<port>`` relayed to ``127.0.0.1:<port>`` on the host."""

    netns: Path
    ports: tuple[int, ...]
    _stop: threading.Event = field(default_factory=threading.Event)
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for port in self.ports:
            listener = _listen_in(self.netns, ("127.0.0.1", port))
            listener.settimeout(0.2)  # so that stop() is seen without closing under accept()
            self._keep(listener)
            self._spawn(self._accept, listener, port)

    def stop(self) -> None:
        self._stop.set()
        for thread in list(self._threads):
            if thread.name.startswith("accept"):
                thread.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _spawn(self, target: object, *args: object) -> None:
        name = "accept" if target == self._accept else "relay"
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket, port: int) -> None:
        while not self._stop.is_set():
            try:
                inner, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", port), timeout=10)
            except OSError:
                inner.close()
                continue
            for sock in (inner, outer):
                sock.settimeout(None)
                self._keep(sock)
            self._spawn(self._pump, inner, outer)
            self._spawn(self._pump, outer, inner)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class WorkerEngine(SecondEngine):
    """A ``SecondEngine`` whose ``ip`` commands and ``dockerd`` run in ``netns``."""

    def __init__(self, root: Path, *, block: ipaddress.IPv4Network, netns: Netns) -> None:
        super().__init__(root, block=block)
        self.prefix = netns.enter


@dataclass
class TwoNodeSwarm:
    """The manager (default engine) and the worker (``.worker``), by node id."""

    manager_id: str
    worker: WorkerEngine
    netns: Netns
    worker_id: str = ""

    def join(self, manager_address: str) -> None:
        token = docker("swarm", "join-token", "--quiet", "worker").stdout.strip()
        self.worker.docker("swarm", "join", "--token", token,
                           "--advertise-addr", self.netns.address,
                           "--listen-addr", f"{self.netns.address}:2377",
                           manager_address, timeout=JOIN_SECONDS)
        self.worker_id = self.worker.docker("info", "--format",
                                            "{{.Swarm.NodeID}}").stdout.strip()
        wait_for(lambda: self.node_state(self.worker_id) == "ready", timeout=JOIN_SECONDS,
                 interval=0.5, what=f"worker node {self.worker_id} to be ready")

    def node_state(self, node: str) -> str:
        found = docker("node", "inspect", node, "--format", "{{.Status.State}}", check=None)
        return found.stdout.strip()

    def leave(self) -> None:
        if not self.worker_id:
            return
        self.worker.docker("swarm", "leave", "--force", check=None, timeout=60)
        # The manager keeps a node that left as "down": take it off the list it found.
        docker("node", "rm", "--force", self.worker_id, check=None, timeout=60)
        self.worker_id = ""


def manager_address() -> str:
    """The address the manager is advertised on, ``127.0.0.1:2377`` for a swarm of ours."""
    found = docker("info", "--format", "{{json .Swarm.RemoteManagers}}").stdout
    managers = json.loads(found) or []
    return str(managers[0]["Addr"]) if managers else ""


@contextlib.contextmanager
def two_nodes(registry: Registry) -> Iterator[TwoNodeSwarm]:
    """Build the worker and join it (see the module docstring); take it all away after."""
    address = manager_address()
    host, _, port = address.rpartition(":")
    if not host or not ipaddress.ip_address(host).is_loopback:
        missing(f"the engine's swarm manager is advertised on {address!r}: the 2-node fixture "
                "relays only a loopback address into its namespace", fix=None)
    block = free_block()
    if block is None:
        missing("no private address block free of this host's routes", fix=None)
    # The block's last /30 (the worker's bridge and pools take its start, inside the netns).
    link = ipaddress.IPv4Network(f"{block.broadcast_address - 3}/30")
    netns = Netns(link)
    root = Path(tempfile.mkdtemp(prefix="crt-worker-", dir="/tmp"))
    engine = WorkerEngine(root, block=block, netns=netns)
    forward = LoopbackForward(netns.path, (int(port), registry.port))
    manager = docker("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
    nodes = TwoNodeSwarm(manager_id=manager, worker=engine, netns=netns)
    try:
        netns.create()
        forward.start()
        engine.start()
        nodes.join(address)
        yield nodes
    finally:
        nodes.leave()
        engine.stop()
        forward.stop()
        netns.delete()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def two_node_swarm(swarm: Swarm, registry: Registry) -> Iterator[TwoNodeSwarm]:
    """The session's swarm with a second node (see the module docstring); skip locally
    when something it needs is missing, fail under CI."""
    del swarm
    for tool in ("dockerd", "nsenter", "ip"):
        if shutil.which(tool) is None:
            missing(f"{tool} is not installed")
    if os.geteuid() != 0:
        missing("a worker dockerd in a network namespace needs root", fix=None)
    with two_nodes(registry) as nodes:
        yield nodes
