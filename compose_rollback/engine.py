"""The one adapter around python-on-whales (and so around the docker CLI).

The rest of the code sees the small ``Engine`` interface below and the plain data of
``dockerdata``; unit tests replace this one seam. python-on-whales' runner is imported lazily and
without its typed client (``whales``): commands that need no engine (``history``, ``diff``,
``--help``, ``status``) do not pay for it, and the others pay 0.17 s instead of 0.34 s of CPU.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compose_rollback import whales
from compose_rollback.dockercmd import compose_env, compose_prefix, docker_prefix
from compose_rollback.dockerdata import (
    LISTING,
    ContainerState,
    Event,
    ImageInfo,
    Listed,
    check_compose,
    container_state,
    listed,
    match_refs,
)
from compose_rollback.errors import BadInputFromCompose, DockerFailed, RollbackError, Unreachable
from compose_rollback.eventstream import EventStream
from compose_rollback.project import Project

if TYPE_CHECKING:
    from python_on_whales.exceptions import DockerException

SNAPSHOT_FLAGS = ("--no-interpolate", "--no-path-resolution", "--no-env-resolution")
#: Seconds a read of the engine may take before the engine counts as unreachable (a gate
#: allows its reads the time left before its own timeout, when that is longer).
ENGINE_CALL_LIMIT = 30.0
#: What an inspection adds to that limit for each container it reads: the engine takes each
#: container's lock in turn, and one busy with 200 containers probing their health took more
#: than 30 s to inspect them all on 2 cores.
INSPECT_LIMIT_PER_CONTAINER = 0.5


@dataclass(frozen=True)
class DockerOptions:
    """Docker's own global flags (before ``compose``), passed on to every docker call."""

    host: str | None = None
    context: str | None = None
    config: str | None = None
    log_level: str | None = None
    tls: bool | None = None
    tlsverify: bool | None = None
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None


class Engine:
    """Docker and Compose, as this tool uses them."""

    def __init__(self, *, docker: DockerOptions | None = None) -> None:
        self._options = docker or DockerOptions()

    # -- plumbing ---------------------------------------------------------------------------
    def warm(self) -> None:
        """Import python-on-whales' runner now (~0.17 s of CPU): called while child processes
        (``compose config``) run, so the import overlaps them instead of delaying them."""
        whales.utils()

    def _run(self, args: Sequence[str], *, hint: str = "",
             env: Mapping[str, str] | None = None) -> str:
        pow_utils = whales.utils()
        try:
            return str(pow_utils.run(list(args), capture_stdout=True, capture_stderr=True,
                                     env=dict(env or {})))
        except pow_utils.DockerException as error:
            raise self._translate(error, hint=hint) from error

    def _translate(self, error: DockerException, *, hint: str = "") -> RollbackError:
        """Turn a failed docker command into our error, telling a down engine apart."""
        stderr = error.stderr or ""
        if not self.engine_reachable():
            return self.unreachable()
        return DockerFailed(error.docker_command, stderr, hint=hint)

    def engine_reachable(self) -> bool:
        try:
            probe = subprocess.run(
                [*self.docker_cmd(), "version", "--format", "{{.Server.Version}}"],
                capture_output=True, text=True, check=False, timeout=30,
            )
        except subprocess.TimeoutExpired:
            return False
        return probe.returncode == 0

    def unreachable(self) -> Unreachable:
        """The error for an engine that does not answer, naming the endpoint docker resolved
        (``-H``, ``--context``, ``DOCKER_HOST``, ``DOCKER_CONTEXT``, the config's current
        context), or the docker context that does not exist."""
        name = self._docker_words(["context", "show"])
        host = self._docker_words(["context", "inspect", "--format",
                                   "{{.Endpoints.docker.Host}}"])
        if host is None and name:
            return Unreachable(f"the docker context {name!r} does not exist",
                               hint="create it (docker context create) or pick another one "
                               "(docker context ls) with --context or DOCKER_CONTEXT")
        where = f" at {host}" if host else ""
        return Unreachable(f"the Docker engine{where} is unreachable",
                           hint="start it (dockerd / systemctl start docker) or check "
                           "DOCKER_HOST and --context")

    def _docker_words(self, args: Sequence[str]) -> str | None:
        """The trimmed output of a docker command that needs no engine; ``None`` if it fails."""
        try:
            done = subprocess.run([*self.docker_cmd(), *args], capture_output=True, text=True,
                                  check=False, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def docker_cmd(self) -> list[str]:
        return docker_prefix(self._options)

    def compose_cmd(self, project: Project, files: Sequence[Path] = ()) -> list[str]:
        """Run with ``compose_env()``: the plugin runs as the docker CLI runs it."""
        return compose_prefix(self._options, project, files)

    def compose_env(self) -> dict[str, str]:
        """What a compose command's environment adds to this process's own."""
        return compose_env(self._options) or {}

    def _compose_environ(self) -> dict[str, str]:
        """A compose command's whole environment."""
        return {**os.environ, **self.compose_env()}

    # -- versions ---------------------------------------------------------------------------
    def compose_version(self) -> str:
        out = self._run([*self.docker_cmd(), "compose", "version", "--short"],
                        hint="install Compose v2 (install.sh --with-docker)")
        return out.strip().lstrip("v")

    def server_version(self) -> str:
        out = self._run([*self.docker_cmd(), "version", "--format", "{{.Server.Version}}"])
        return out.strip()

    # -- compose ----------------------------------------------------------------------------
    def config(self, project: Project, *, interpolate: bool) -> dict[str, Any]:
        """The normalised model. Interpolated output holds secrets: keep it in memory only.

        Run without python-on-whales (which the caller imports meanwhile, ``warm``): the
        first thing ``up`` and ``revert`` wait for."""
        flags = [] if interpolate else list(SNAPSHOT_FLAGS)
        args = [*self.compose_cmd(project), "config", "--format", "json", *flags]
        done = subprocess.run(args, capture_output=True, text=True, check=False,
                              env=self._compose_environ())
        if done.returncode != 0:
            error = _exception(done)
            translated = self._translate(error)
            if isinstance(translated, Unreachable):
                raise translated from error
            check_compose(self.compose_version())  # an old compose lacks the flags we use
            detail = (error.stderr or "").strip().splitlines()
            raise BadInputFromCompose(detail[-1] if detail else "compose rejected the project") \
                from error
        model: dict[str, Any] = json.loads(done.stdout)
        return model

    def build(self, project: Project, services: Sequence[str]) -> None:
        self._run([*self.compose_cmd(project), "build", "--quiet", *services],
                  hint="fix the build and try again", env=self.compose_env())

    def pull(self, project: Project, services: Sequence[str], *, policy: str) -> None:
        """Pull; a registry that cannot be reached is ``Unreachable``, a missing image
        ``DockerFailed``. Docker reports both only as text, so the text is what tells them
        apart."""
        try:
            self._run([*self.compose_cmd(project), "pull", "--quiet", "--policy", policy,
                       *services], env=self.compose_env())
        except DockerFailed as error:
            if any(sign in error.stderr for sign in _UNREACHABLE_SIGNS):
                raise Unreachable(f"the registry cannot be reached: {error.detail}",
                                  hint="start it or check the network, then try again; "
                                  "nothing was changed") from error
            raise

    def up(self, project: Project, *, overlay: Path,
           started: Callable[[int], None] | None = None, services: Sequence[str] = (),
           scale: Mapping[str, int] | None = None, recreate: bool = True) -> None:
        """Apply a self-contained revision file: ``compose -f <overlay> up -d --remove-orphans``.

        ``services``: only these (``--no-deps``); ``scale``: ``--scale SVC=N``; ``recreate``
        False leaves running containers as they are (``--no-recreate``), so new ones are
        created beside them — the start of a start-first rollout.

        Run in its own process group, so a Ctrl-C reaches us and not compose. On the first
        interrupt compose is let finish (an interrupted compose leaves stops in flight in the
        engine that would hit the revision being put back); a second one stops it at once.
        """
        args = [*self.compose_cmd(project, [overlay]), "up", "--detach", "--quiet-pull"]
        args += ["--remove-orphans"] if recreate else ["--no-recreate"]
        for name, count in sorted((scale or {}).items()):
            args += ["--scale", f"{name}={count}"]
        if services:
            args += ["--no-deps", *services]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, env=self._compose_environ())
        if started is not None:
            started(proc.pid)
        try:
            out, err = proc.communicate()
        except KeyboardInterrupt:
            try:
                proc.communicate()
            except KeyboardInterrupt:
                _stop_group(proc)
            raise
        if proc.returncode != 0:
            error = whales.utils().DockerException(args, proc.returncode, out, err)
            raise self._translate(error) from error

    def config_hashes(self, project: Project, *, overlay: Path) -> dict[str, str]:
        """Each service's config hash, as Compose labels the containers it creates from the
        overlay (``compose config --hash '*'``): equal hash, nothing for Compose to change."""
        out = self._run([*self.compose_cmd(project, [overlay]), "config", "--hash", "*"],
                        env=self.compose_env())
        pairs = (line.split() for line in out.splitlines())
        return {p[0]: p[1] for p in pairs if len(p) == 2}

    def remove_containers(self, ids: Sequence[str]) -> None:
        """``docker rm --force``: SIGKILL and remove at once, no grace period (for containers
        of a revision that failed; its broken release is not owed a graceful shutdown)."""
        if ids:
            done = self._quick(["rm", "--force", "--volumes", *ids], limit=60.0)
            if done.returncode != 0 and "No such container" not in done.stderr:
                raise self._translate(_exception(done))

    def stop_containers(self, ids: Sequence[str]) -> None:
        """``docker stop`` then ``docker rm``: each container gets its own stop signal and
        grace period (``stop_signal``, ``stop_grace_period``, set by Compose at creation)."""
        if ids:
            done = self._quick(["stop", *ids], limit=3600.0)
            if done.returncode != 0 and "No such container" not in done.stderr:
                raise self._translate(_exception(done))
            self.remove_containers(ids)

    # -- images -----------------------------------------------------------------------------
    def inspect_images(self, refs: Sequence[str]) -> dict[str, ImageInfo]:
        """Inspect many images in one docker call; missing ones are left out of the result."""
        unique = sorted(set(refs))
        if not unique:
            return {}
        pow_utils = whales.utils()
        args = [*self.docker_cmd(), "image", "inspect", *unique]
        try:
            out = str(pow_utils.run(args, capture_stdout=True, capture_stderr=True))
        except pow_utils.DockerException as error:
            if not self.engine_reachable():
                raise self._translate(error) from error
            out = error.stdout or "[]"
        found = json.loads(out or "[]")
        infos = [
            ImageInfo(id=d["Id"], repo_tags=tuple(d.get("RepoTags") or ()),
                      repo_digests=tuple(d.get("RepoDigests") or ()))
            for d in found
        ]
        return match_refs(unique, infos)

    def tag(self, source: str, target: str) -> None:
        self._run([*self.docker_cmd(), "image", "tag", source, target])

    def untag(self, refs: Sequence[str]) -> None:
        """Remove tags; an image still tagged elsewhere or used by a container stays."""
        if refs:
            pow_utils = whales.utils()
            # Some may be gone already: fine, that was the aim.
            with contextlib.suppress(pow_utils.DockerException):
                pow_utils.run([*self.docker_cmd(), "image", "rm", "--no-prune", *refs])

    # -- containers -------------------------------------------------------------------------
    def containers(self, project_name: str, *, known: Sequence[str] = (),
                   limit: float = ENGINE_CALL_LIMIT) -> list[ContainerState]:
        """Every container of the project (one ``ps`` and one ``inspect`` call).

        ``known``: the containers the caller found last time; when all of them are still
        there, one ``inspect`` call answers (the gate asks again on every event, and after
        ``up`` the set of containers does not change). Called in the gate loop, so each call
        has a time limit, ``limit`` seconds (the gate passes the time left before its own
        timeout: an engine busy starting 200 containers may take more than the default to
        answer, and that is no reason to fail a release), and tolerates a container removed
        between the calls.
        """
        if known:
            found = self._inspect_containers(list(known), limit=limit)
            if len(found) == len(set(known)):
                return found
        ps = self._quick(["ps", "--all", "--quiet", "--no-trunc", *_of_project(project_name)],
                         limit=limit)
        if ps.returncode != 0:
            raise self._translate(_exception(ps))
        return self._inspect_containers(ps.stdout.split(), limit=limit)

    def listing(self, project_name: str) -> list[Listed]:
        """Every container of the project as one ``docker ps`` shows it (``Listed``)."""
        ps = self._quick(["ps", "--all", "--no-trunc", *_of_project(project_name),
                          "--format", LISTING])
        if ps.returncode != 0:
            raise self._translate(_exception(ps))
        try:
            return [listed(line) for line in ps.stdout.splitlines() if line.strip()]
        except (ValueError, KeyError) as error:
            raise DockerFailed(["docker", "ps"], f"unreadable listing: {error}") from error

    def inspect_containers(self, ids: Sequence[str]) -> list[ContainerState]:
        """The containers ``ids`` (one ``inspect`` call); one removed meanwhile is left out."""
        return self._inspect_containers(list(ids), limit=ENGINE_CALL_LIMIT)

    def _inspect_containers(self, ids: list[str], *, limit: float) -> list[ContainerState]:
        if not ids:
            return []
        limit = max(limit, ENGINE_CALL_LIMIT + INSPECT_LIMIT_PER_CONTAINER * len(ids))
        inspected = self._quick(["container", "inspect", *ids], limit=limit)
        try:  # a container removed meanwhile is left out; the others are still printed
            data = json.loads(inspected.stdout or "[]")
        except ValueError as error:
            raise self._translate(_exception(inspected)) from error
        return [container_state(d) for d in data]

    def _quick(self, args: Sequence[str], *, limit: float = ENGINE_CALL_LIMIT
               ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([*self.docker_cmd(), *args], capture_output=True, text=True,
                                  timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            host = self._docker_words(["context", "inspect", "--format",
                                       "{{.Endpoints.docker.Host}}"])
            where = f" at {host}" if host else ""
            raise Unreachable(f"the Docker engine{where} did not answer `docker {args[0]}` "
                              f"within {limit:g}s", hint="check dockerd (docker info)") from None

    def logs(self, container_id: str, *, tail: int = 20) -> str:
        pow_utils = whales.utils()
        try:
            out, err = pow_utils.run(
                [*self.docker_cmd(), "logs", "--tail", str(tail), container_id],
                capture_stdout=True, capture_stderr=True, return_stderr=True)
        except pow_utils.DockerException:
            return ""
        return (str(out) + "\n" + str(err)).strip()

    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]:
        """Run a command in a container (``docker exec``); its exit code and output."""
        try:
            done = subprocess.run([*self.docker_cmd(), "exec", container_id, *command],
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout:g}s"
        return done.returncode, (done.stdout + done.stderr)

    def events(self, project_name: str, *, on_event: Callable[[Event], None]) -> EventStream:
        """Start streaming the project's container events to ``on_event`` (a thread).

        Only the actions that change a container's state: every healthcheck run is also an
        ``exec_create``/``exec_start``/``exec_die`` event, and with many services those would
        wake the gate (and make it inspect the project) dozens of times a second.
        """
        args = [*self.docker_cmd(), "events", "--format", "{{json .}}", "--filter",
                "type=container", *_of_project(project_name)]
        for action in STATE_ACTIONS:
            args += ["--filter", f"event={action}"]
        return EventStream(args, on_event)


    # -- swarm ------------------------------------------------------------------------------
    def swarm_state(self) -> str:
        """``active`` on a Swarm manager, else the node's state (``inactive``, ``worker``…)."""
        done = self._quick(["info", "--format",
                            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"])
        if done.returncode != 0:
            raise self._translate(_exception(done))
        state, _, manager = done.stdout.strip().partition(" ")
        return state if state != "active" or manager == "true" else "worker"

    def stack_model(self, project: Project, *, text: str) -> dict[str, Any]:
        """A revision's text as Compose reads it alone (``-f -``): interpolated, normalised.
        Holds secrets: memory only."""
        done = self._fed([*self.compose_cmd(project, [Path("-")]), "config", "--format",
                          "json"], text, env=self._compose_environ())
        if done.returncode != 0:
            raise self._translate(_exception(done))
        model: dict[str, Any] = json.loads(done.stdout)
        return model

    def stack_check(self, text: str) -> str:
        """What ``docker stack config`` (the stack loader) says is wrong with a stack file."""
        done = self._fed([*self.docker_cmd(), "stack", "config", "--compose-file", "-"], text)
        lines = done.stderr.strip().splitlines()
        return "" if done.returncode == 0 else (lines[-1] if lines else "rejected")

    def stack_deploy(self, stack: str, *, text: str) -> None:
        """``docker stack deploy`` from stdin (the text holds interpolated values). Digests are
        pinned already, so no registry is asked (``--resolve-image never``)."""
        done = self._fed([*self.docker_cmd(), "stack", "deploy", "--compose-file", "-",
                          "--prune", "--resolve-image", "never", "--with-registry-auth",
                          stack], text, limit=300.0)
        if done.returncode != 0:
            raise self._translate(_exception(done))

    def stack_services(self, stack: str) -> list[dict[str, Any]]:
        """``docker service inspect`` of every service of the stack."""
        ids = self._quick(["service", "ls", "--quiet", "--filter",
                           f"label=com.docker.stack.namespace={stack}"])
        if ids.returncode != 0:
            raise self._translate(_exception(ids))
        return self._inspect_json(["service", "inspect"], ids.stdout.split())

    def stack_tasks(self, stack: str) -> list[dict[str, Any]]:
        """Every task of the stack Swarm still keeps (its task history included)."""
        ids = self._quick(["stack", "ps", "--quiet", "--no-trunc", stack])
        if ids.returncode != 0:
            if "nothing found in stack" in ids.stderr.lower():
                return []
            raise self._translate(_exception(ids))
        return self._inspect_json(["inspect", "--type", "task"], ids.stdout.split())

    def _inspect_json(self, command: Sequence[str], ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        done = self._quick([*command, *ids])
        try:  # one removed meanwhile is left out; the others are still printed
            found: list[dict[str, Any]] = json.loads(done.stdout or "[]")
        except ValueError as error:
            raise self._translate(_exception(done)) from error
        return found

    def stack_events(self, stack: str, *, on_event: Callable[[Event], None]) -> EventStream:
        """The stack's containers' events on this node: they wake the Swarm gate early."""
        args = [*self.docker_cmd(), "events", "--format", "{{json .}}", "--filter",
                "type=container", "--filter", f"label=com.docker.stack.namespace={stack}"]
        for action in STATE_ACTIONS:
            args += ["--filter", f"event={action}"]
        return EventStream(args, on_event)

    def _fed(self, args: Sequence[str], text: str, *, limit: float = 60.0,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([str(a) for a in args], input=text, capture_output=True,
                                  text=True, timeout=limit, check=False, env=env)
        except subprocess.TimeoutExpired:
            raise Unreachable(f"the Docker engine did not answer `{' '.join(args[1:3])}` "
                              f"within {limit:g}s", hint="check dockerd (docker info)") from None


def _of_project(project_name: str) -> list[str]:
    """The filter of a listing or event stream to the containers of one Compose project."""
    return ["--filter", f"label=com.docker.compose.project={project_name}"]


def _exception(done: subprocess.CompletedProcess[str]) -> DockerException:
    exception: type[DockerException] = whales.utils().DockerException
    return exception([str(a) for a in done.args], done.returncode,
                           done.stdout.encode(), done.stderr.encode())


#: Container events that change what the gate judges (``health_status`` matches every
#: ``health_status: …`` action).
STATE_ACTIONS = ("start", "restart", "die", "kill", "oom", "stop", "destroy", "pause", "unpause",
                 "health_status")

_UNREACHABLE_SIGNS = ("connection refused", "no such host", "i/o timeout", "dial tcp",
                      "network is unreachable", "TLS handshake timeout")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the docker CLI and its compose plugin: SIGTERM, then SIGKILL if they linger."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.wait(timeout=5)
            return
