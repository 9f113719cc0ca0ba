"""Helpers shared by the robustness tests (issue 5): snapshots, CLI wrappers, summaries.

Everything here only *reads* what the CLI, the files and the engine report; nothing works
around the product.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.compose_project import REPO_ROOT, ComposeProject
from support.helpers import clean_env, describe, docker

#: Gate settings for every project of these tests: a short soak, a bounded wait. The soak is
#: 200ms, not 1s: every gate still waits for each container to be running and healthy, and
#: none of these tests is about how long a release stays healthy; ~0.8 s less per gated deploy.
FAST = ("--min-healthy", "200ms", "--timeout", "60s")
X_ROLLBACK = "x-rollback: {timeout: 60s, min_healthy: 200ms}\n"

#: Where summary tables are written besides stdout (``-s``-independent evidence).
SUMMARY_DIR = Path(os.environ.get("CRT_SUMMARY_DIR", "/tmp/compose-rollback-test-summaries"))


#: The test image checks its health every second with a 1 s timeout and 2 retries: on a
#: machine shared by many test runs a check can take longer than that. These tests are about
#: other things, so their services give the check more room (a crash is still seen at once).
TOLERANT_HEALTHCHECK = "    healthcheck: {interval: 1s, timeout: 10s, retries: 3}"


def compose_text(image: str, *, env: Mapping[str, str] | None = None, extra: str = "",
                 service: str = "app", top: str = X_ROLLBACK,
                 healthcheck: str = TOLERANT_HEALTHCHECK) -> str:
    """A one-service compose file running a local image (never pulled)."""
    lines = [top.rstrip("\n"), "services:", f"  {service}:", f"    image: {image}",
             "    pull_policy: never", healthcheck]
    if env:
        lines.append("    environment:")
        lines += [f"      {key}: {json.dumps(value)}" for key, value in env.items()]
    if extra:
        lines += textwrap.indent(textwrap.dedent(extra).strip("\n"), "    ").splitlines()
    return "\n".join(line for line in lines if line) + "\n"


def write_compose(project: ComposeProject, text: str) -> Path:
    return project.write_file("compose.yaml", text)


def cli(project: ComposeProject, *args: str, check: bool | int | None = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
    return project.run(*args, check=check, env=env, timeout=timeout)


def cli_json(project: ComposeProject, *args: str, check: bool | int | None = True,
             env: Mapping[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run a ``--json`` command; return the process and its parsed stdout."""
    result = cli(project, *args, "--json", check=check, env=env)
    try:
        data = json.loads(result.stdout)
    except ValueError as error:
        raise AssertionError(f"not JSON ({error}):\n{describe(result)}") from None
    return result, data


def up(project: ComposeProject, *args: str, check: bool | int | None = 0) -> Any:
    """``up --json`` with fast gates; the parsed result (exit code checked)."""
    return cli_json(project, "up", *FAST, *args, check=check)[1]


def history(project: ComposeProject) -> list[dict[str, Any]]:
    data = cli_json(project, "history")[1]
    assert isinstance(data, list), data
    return data


def statuses(project: ComposeProject) -> dict[int, str]:
    return {int(r["number"]): str(r["status"]) for r in history(project)}


def popen_cli(project: ComposeProject, *args: str,
              env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start our CLI as a child process (to kill it, or to race it against another)."""
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "compose_rollback", "-p", project.name, *args],
        cwd=project.dir, env=clean_env({"PYTHONPATH": python_path, **(env or {})}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def run_cli(project: ComposeProject, *args: str, env: Mapping[str, str] | None = None,
            timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Like ``project.run`` (any exit code), but a hung command is killed with all its
    children (compose, docker events) so that no pipe keeps the test waiting for ever."""
    proc = popen_cli(project, *args, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        out, err = proc.communicate()
        err += f"\n[test] killed after {timeout:g} s"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# -- what must not change -------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Files under the project directory (paths, kinds, bytes), its containers and tags."""

    files: dict[str, bytes | str]
    containers: dict[str, tuple[str, str, str]]
    retention: tuple[str, ...]

    def differences(self, after: Snapshot, *, finished_journal_ok: bool = False) -> list[str]:
        """Every difference; with ``finished_journal_ok`` a journal that only gained a
        finished operation (its last record is ``end``) does not count: it is machine-local
        and records steps *before* they are taken, so a refused operation may leave
        ``begin ... end`` behind without having changed anything."""
        out: list[str] = []
        for path in sorted(set(self.files) | set(after.files)):
            old, new = self.files.get(path), after.files.get(path)
            if finished_journal_ok and path.endswith("/journal.jsonl") and _finished(new):
                continue
            if old is None:
                out.append(f"created {path}: {_short(new)}")
            elif new is None:
                out.append(f"removed {path}")
            elif old != new:
                out.append(f"changed {path}: {_short(old)} -> {_short(new)}")
        for cid in sorted(set(self.containers) | set(after.containers)):
            if self.containers.get(cid) != after.containers.get(cid):
                out.append(f"container {cid[:12]}: {self.containers.get(cid)} -> "
                           f"{after.containers.get(cid)}")
        if self.retention != after.retention:
            out.append(f"retention tags: {self.retention} -> {after.retention}")
        return out


def _finished(journal: bytes | str | None) -> bool:
    if not isinstance(journal, bytes):
        return journal is None
    records = []
    for line in journal.decode("utf-8", "replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return not records or (isinstance(records[-1], dict) and records[-1].get("step") == "end")


def _short(value: bytes | str | None) -> str:
    text = repr(value)
    return text if len(text) < 160 else text[:157] + "..."


def snapshot(project: ComposeProject) -> Snapshot:
    files: dict[str, bytes | str] = {}
    for path in sorted(project.dir.rglob("*")):
        rel = str(path.relative_to(project.dir))
        if path.is_symlink():
            files[rel] = f"symlink -> {path.readlink()}"
        elif path.is_dir():
            files[rel + "/"] = "directory"
        elif path.is_file():
            files[rel] = path.read_bytes()
    listing = docker("ps", "--all", "--no-trunc", "--filter",
                     f"label=com.docker.compose.project={project.name}",
                     "--format", "{{.ID}}\t{{.State}}\t{{.Image}}\t{{.Status}}").stdout
    containers: dict[str, tuple[str, str, str]] = {}
    for line in listing.splitlines():
        cid, state, image, status = line.split("\t")
        # "Up 3 seconds" ages; only its health part means something.
        health = status.rsplit("(", 1)[-1].rstrip(")") if "(" in status else ""
        containers[cid] = (state, image, health)
    refs = docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    retention = tuple(sorted(r for r in refs if f"rollback-{project.name}" in r))
    return Snapshot(files, containers, retention)


# -- checking one error ---------------------------------------------------------------------


def error_problems(result: subprocess.CompletedProcess[str], *, code: int,
                   needles: tuple[str, ...]) -> list[str]:
    """What is wrong with how a command reported an error (empty: all good)."""
    problems: list[str] = []
    if result.returncode != code:
        problems.append(f"exit code {result.returncode}, expected {code}")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if "Traceback" in result.stderr:
        problems.append("a traceback reached stderr")
    if len(lines) != 1:
        problems.append(f"stderr has {len(lines)} lines, expected exactly one")
    missing = [n for n in needles if n.lower() not in result.stderr.lower()]
    if missing:
        problems.append(f"stderr does not name {missing}")
    return problems


# -- summaries --------------------------------------------------------------------------------


def publish(name: str, text: str, capsys: pytest.CaptureFixture[str]) -> Path:
    """Print a summary table past pytest's capture and keep it in a file."""
    SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
    path = SUMMARY_DIR / f"{name}.txt"
    path.write_text(text + "\n")
    print(text)  # also in the captured output (-rA)
    with capsys.disabled():
        print(f"\n{text}\n(summary also written to {path})", flush=True)
    return path


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)
