"""Shared pieces of the benchmark harness: statistics, commands, event capture, workspace.

Everything the harness creates on the engine is named ``crbench-<hex>`` (projects, stacks) or
belongs to one ``AppImages`` session (``crt-app-<session>:<variant>``), and is removed by exact
reference in ``Workspace.close()``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.compose_project import ComposeProject
from support.helpers import clean_env, unique_name
from support.registry import Registry
from support.testimages import AppImages, find_busybox

REPO = Path(__file__).resolve().parents[1]

#: The interpreter that runs our CLI: this one, never a pyenv/bash shim in front of it.
PYTHON = sys.executable
STEM = "crbench"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- statistics -----------------------------------------------------------------------------
def summarize(samples: Sequence[float], *, digits: int = 4) -> dict[str, Any]:
    """Median, min, max, p95 (nearest rank) and the samples themselves."""
    values = [float(v) for v in samples]
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "p95": None, "samples": []}
    ordered = sorted(values)
    rank = max(1, math.ceil(0.95 * len(ordered)))
    return {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
        "p95": round(ordered[rank - 1], digits),
        "samples": [round(v, digits) for v in values],
    }


def ratio(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
    """Median of ``a`` over median of ``b``."""
    if not a.get("median") or not b.get("median"):
        return None
    return round(float(a["median"]) / float(b["median"]), 3)


def paired_ratios(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Run-by-run ratios a[i]/b[i] (the two were measured back to back)."""
    return summarize([x / y for x, y in zip(a, b, strict=False) if y > 0], digits=3)


# -- commands -------------------------------------------------------------------------------
@dataclass
class Timed:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + system CPU seconds of the process tree (when run alone)

    def describe(self, args: Sequence[str]) -> str:
        return (f"$ {' '.join(map(str, args))}\nexit {self.returncode}\n--- stdout ---\n"
                f"{self.stdout[-2000:]}\n--- stderr ---\n{self.stderr[-3000:]}")


def timed(args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
          expect: int | None = 0, timeout: float = 600.0, quiet: bool = False) -> Timed:
    """Run ``args`` and time it with ``perf_counter`` (spawn to exit).

    ``quiet``: send output to /dev/null instead of capturing it (latency figures of commands
    whose output is large, so the pipe does not add to the figure).
    """
    sink = subprocess.DEVNULL if quiet else subprocess.PIPE
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(list(args), cwd=cwd, env=dict(env) if env is not None else None,
                            stdout=sink, stderr=sink, text=True)
    # No timeout= on the wait: with one, Popen.wait polls with sleeps of up to 50 ms, which
    # rounded every quiet figure up to the next poll. A timer kills a command that hangs.
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        out, err = proc.communicate()
    finally:
        killer.cancel()
    seconds = time.perf_counter() - start
    if seconds >= timeout:
        raise subprocess.TimeoutExpired(list(args), timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = Timed(seconds, proc.returncode, out or "", err or "", cpu)
    if expect is not None and proc.returncode != expect:
        raise BenchError(f"unexpected exit code (wanted {expect}):\n{result.describe(args)}")
    return result


def docker(*args: str, expect: int | None = 0, timeout: float = 300.0,
           env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Timed:
    return timed(["docker", *args], expect=expect, timeout=timeout, env=env or clean_env(),
                 cwd=cwd)


class BenchError(RuntimeError):
    pass


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for our CLI from the working tree (``python -m compose_rollback``)."""
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    env: dict[str, str] = dict(clean_env({"PYTHONPATH": python_path, **(extra or {})}))
    for key in list(env):
        if key.startswith(("DOCKER_CLI_PLUGIN_", "COMPOSE_ROLLBACK_")):
            del env[key]
    # An installed plugin runs from bytecode pip compiled at install time; from the working tree
    # let Python cache it as it does by default (``__pycache__`` is git-ignored) instead of
    # compiling every module on every run when the calling shell sets PYTHONDONTWRITEBYTECODE.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def ours(project: ComposeProject, *args: str) -> list[str]:
    """argv of our CLI for ``project``."""
    return [PYTHON, "-m", "compose_rollback", "-p", project.name, *args]


def compose(project: ComposeProject, *args: str) -> list[str]:
    return ["docker", "compose", "-p", project.name, *args]


@dataclass
class Streamed:
    """A command whose stderr lines were timestamped (wall clock) as they were read."""

    start: float  # time.time() just before spawning
    end: float  # time.time() right after exit
    returncode: int
    lines: list[tuple[float, str]]
    stdout: str

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def first(self, needle: str) -> float | None:
        return next((t for t, line in self.lines if needle in line), None)

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def streamed(args: Sequence[str], *, cwd: Path, env: Mapping[str, str],
             timeout: float = 600.0) -> Streamed:
    """Run ``args``, reading stderr line by line as it comes, each line with its read time."""
    start = time.time()
    proc = subprocess.Popen(list(args), cwd=cwd, env=dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read() if proc.stdout
                                                         else ""), daemon=True)
    reader.start()
    lines: list[tuple[float, str]] = []
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        lines.append((time.time(), line.rstrip("\n")))
        if time.monotonic() > deadline:
            proc.kill()
            break
    code = proc.wait()
    end = time.time()
    reader.join(timeout=10)
    return Streamed(start, end, code, lines, "".join(out))


# -- docker events ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DockerEvent:
    time: float  # daemon wall clock, seconds
    action: str
    id: str
    attributes: Mapping[str, str]


class EventLog:
    """``docker events`` for containers with one label, captured in a thread.

    Started with ``--since`` a moment in the past, so events between the start and the
    subscription are replayed rather than lost.
    """

    def __init__(self, label: str,
                 on_event: Callable[[DockerEvent], None] | None = None) -> None:
        self._on_event = on_event
        since = f"{time.time() - 0.5:.3f}"
        self._proc = subprocess.Popen(
            ["docker", "events", "--since", since, "--format", "{{json .}}",
             "--filter", "type=container", "--filter", f"label={label}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            env=clean_env())
        self.events: list[DockerEvent] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # let the subscription settle

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            attrs = (raw.get("Actor") or {}).get("Attributes") or {}
            event = DockerEvent(int(raw.get("timeNano") or 0) / 1e9,
                                str(raw.get("Action") or raw.get("status") or ""),
                                str(raw.get("id") or ""), dict(attrs))
            with self._lock:
                self.events.append(event)
            if self._on_event is not None:
                self._on_event(event)

    def close(self) -> None:
        time.sleep(0.2)  # let the last events arrive
        self._proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        if self._proc.poll() is None:
            self._proc.kill()
        self._thread.join(timeout=5)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def matching(self, predicate: Callable[[DockerEvent], bool]) -> list[DockerEvent]:
        with self._lock:
            return [e for e in self.events if predicate(e)]


def image_of(container_id: str) -> str | None:
    """The image id a container runs (None when it is gone)."""
    out = docker("container", "inspect", "--format", "{{.Image}}", container_id, expect=None)
    return out.stdout.strip() if out.returncode == 0 else None


def healthy_again(events: EventLog, *, after: float, image_id: str) -> float | None:
    """Daemon time of the first ``health_status: healthy`` of a container of ``image_id``
    after ``after``."""
    cache: dict[str, str | None] = {}
    for event in sorted(events.matching(lambda e: e.action == "health_status: healthy"
                                        and e.time >= after), key=lambda e: e.time):
        if event.id not in cache:
            cache[event.id] = image_of(event.id)
        if cache[event.id] == image_id:
            return event.time
    return None


# -- workspace ------------------------------------------------------------------------------
@dataclass
class Workspace:
    """Temp directory, the session's images, and every project the harness made."""

    root: Path
    images: AppImages
    #: Healthcheck keys every section's compose file sets over its image's own (``--tiny``:
    #: a tolerant probe timeout); empty: the image's own healthcheck, as in a full run.
    healthcheck: Mapping[str, str] = field(default_factory=dict)
    projects: list[ComposeProject] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def project(self, compose_text: str) -> ComposeProject:
        made = ComposeProject(self.root / "projects", name=unique_name(STEM, hex_chars=8))
        self.projects.append(made)
        made.write(compose_text)
        return made

    def close_project(self, project: ComposeProject) -> None:
        with contextlib.suppress(Exception):
            project.cleanup()
        # A network whose last container was still going away is left behind: try again (the
        # engine took more than 5 s to release the endpoints of 200 removed containers).
        label = f"label=com.docker.compose.project={project.name}"
        for _ in range(30):
            left = docker("network", "ls", "--quiet", "--filter", label, expect=None)
            if not left.stdout.split():
                break
            time.sleep(1)
            docker("network", "rm", *left.stdout.split(), expect=None)
        else:
            log(f"network(s) of {project.name} could not be removed: {left.stdout.split()}")
        if project in self.projects:
            self.projects.remove(project)

    def close(self) -> None:
        for undo in reversed(self.cleanups):
            try:
                undo()
            except Exception as error:  # keep cleaning
                log(f"cleanup step failed: {error}")
        for project in list(self.projects):
            self.close_project(project)
        try:
            self.images.cleanup()
        except Exception as error:
            log(f"image cleanup failed: {error}")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def workspace(variants: Sequence[str], *,
              healthcheck: Mapping[str, str] | None = None) -> Iterator[Workspace]:
    busybox = find_busybox()
    if busybox is None:
        raise BenchError("no static busybox (Debian package busybox-static)")
    root = Path(tempfile.mkdtemp(prefix=f"{STEM}-"))
    (root / "projects").mkdir()
    # AppImages only needs a registry to push, which the harness never does: local images.
    images = AppImages(registry=Registry(root / "registry"), workdir=root / "images",
                       busybox=busybox, session=unique_name("b", hex_chars=6).replace("-", ""))
    space = Workspace(root=root, images=images, healthcheck=dict(healthcheck or {}))
    try:
        log(f"building test images {', '.join(variants)}")
        images.build_all(variants, workers=2)
        yield space
    finally:
        log("cleaning up")
        space.close()


def service_block(name: str, image: str, env: Mapping[str, str],
                  healthcheck: Mapping[str, str] | None = None) -> str:
    lines = [f"  {name}:", f"    image: {image}"]
    if env:
        lines.append("    environment:")
        lines += [f"      {k}: {json.dumps(str(v))}" for k, v in env.items()]
    if healthcheck:
        lines.append("    healthcheck:")
        lines += [f"      {k}: {v}" for k, v in healthcheck.items()]
    return "\n".join(lines)


def compose_text(services: Mapping[str, str], *, env: Mapping[str, str] | None = None,
                 rollback: Mapping[str, str] | None = None,
                 healthcheck: Mapping[str, str] | None = None) -> str:
    """A compose file: ``services`` maps name -> image; every service gets ``env`` (and
    ``healthcheck`` settings over the image's own, when given)."""
    body = "services:\n" + "\n".join(service_block(n, i, env or {}, healthcheck)
                                      for n, i in services.items()) + "\n"
    if rollback:
        body += "x-rollback:\n" + "".join(f"  {k}: {v}\n" for k, v in rollback.items())
    return body
