"""Issue 5: SIGKILL at 20+ points of ``up`` and ``revert``, against the real engine.

One project lives through every kill point. Each point starts an operation from a healthy
pinned state (an ``up`` of a new good release, an ``up`` of a release that crashes so that the
last good revision is restored, or a ``revert``) and kills it at an exact moment, whatever the
machine's speed (no sleep before a kill):

- ``before:<step>`` / ``after:<step>[#n]``: the CLI kills itself right before or after it
  writes the n-th journal record of that step (``begin``, ``recorded``, ``apply``, ``compose``
  (compose is running), ``gate``, ``restore``, ``end``), through the test-only
  ``COMPOSE_ROLLBACK_TEST_KILL_AT`` (``compose_rollback/testhooks.py``);
- ``pre_up``: a ``pre_up`` hook SIGKILLs its CLI: the lock is held, nothing pinned yet;
- ``soak``: the test kills when the CLI prints that the gate is soaking (a 2-minute soak, so
  the CLI is still in the gate, its ``docker events`` child running, when the signal lands).

Every kill is checked to have landed: the CLI died of SIGKILL and its last journal record is
the one the point names. After each kill:

- ``history.json`` is valid JSON and ``history --json`` exits 0;
- the next command, whichever kind it is, marks the revision the operation left ``pending`` as
  ``interrupted`` and says so on stderr; no revision stays ``pending``; the lock never blocks it;
- one ``up`` or ``revert`` brings the project to a healthy pinned state (``status --json``:
  no drift, every container running and not unhealthy);
- nothing is lost: every revision file the history names exists and matches its checksum, and
  ``current.yaml`` equals the deployed revision's overlay.

A summary table of every kill point is printed at the end (and written to a file).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from robust_helpers import (
    X_ROLLBACK,
    cli,
    compose_text,
    popen_cli,
    publish,
    run_cli,
    table,
    write_compose,
)

from compose_rollback.testhooks import VARIABLE
from support.compose_project import ComposeProject
from support.helpers import describe
from support.testimages import AppImages

# Not serial: every kill lands at a journal step or a printed line, never after a sleep, so
# parallel load cannot move it; the only collision it had (a prune) is gone.
pytestmark = pytest.mark.docker

#: Deploys and heals are gated (every container running and healthy), but the soak is short:
#: what this test proves happens at journal steps, and the two ``soak`` points use LONG_SOAK.
#: About 45 gated deploys each saved ~0.8 s of soak.
GATES = ("--min-healthy", "200ms", "--timeout", "30s")
#: The tolerant healthcheck (a 10 s timeout for a loaded machine), checked every half second:
#: Docker 20.10 runs the first check one interval after the start, so every gate waits for
#: that interval before it sees "healthy" (~0.5 s saved per deploy; one container).
HEALTHCHECK = "    healthcheck: {interval: 500ms, timeout: 10s, retries: 3}"


@dataclass(frozen=True)
class KillPoint:
    operation: str  # up-good | up-bad | revert
    at: str  # before:<step> | after:<step>[#n] (the journal hook) | pre_up | soak
    group: bool = False  # kill the whole process group (its children too), not just the CLI

    @property
    def label(self) -> str:
        return f"{self.operation} @ {self.at}" + (" (group)" if self.group else "")

    def expected(self) -> tuple[str, int]:
        """The last journal step of the killed CLI, and how many records of it it wrote
        (``("-", 0)``: none at all)."""
        if self.at == "pre_up":
            return "-", 0
        if self.at == "soak":
            return "gate", 0  # 0: any number (the soak of the first gate that gets there)
        when, _, target = self.at.partition(":")
        step, _, nth = target.partition("#")
        n = int(nth or 1)
        if when == "after":
            return step, n
        return _STEP_BEFORE[self.operation, step], n - 1


#: The journal record written just before each step a ``before:`` point names.
_STEP_BEFORE = {
    ("up-good", "begin"): "-", ("revert", "begin"): "-",
    ("up-good", "end"): "gate", ("up-bad", "end"): "gate",
    ("up-good", "apply"): "recorded",
}

POINTS = [
    # pin phase: the lock held, nothing pinned / everything pinned, nothing recorded
    KillPoint("up-good", "pre_up"),
    KillPoint("up-good", "before:begin"),
    KillPoint("up-good", "before:begin", group=True),
    # record
    KillPoint("up-good", "after:begin"),
    KillPoint("up-good", "after:recorded"),
    KillPoint("up-good", "before:apply", group=True),  # the retention tags made
    # apply
    KillPoint("up-good", "after:apply"),
    KillPoint("up-good", "after:compose"),  # compose is running
    KillPoint("up-good", "after:compose", group=True),
    # gate
    KillPoint("up-good", "after:gate"),
    KillPoint("up-good", "soak"),
    KillPoint("up-good", "before:end"),  # promoted, the journal not closed
    KillPoint("up-good", "soak", group=True),
    # a failing release: apply, gate, then the restore of the last good revision
    KillPoint("up-bad", "after:compose"),
    KillPoint("up-bad", "after:gate"),
    KillPoint("up-bad", "after:restore"),
    KillPoint("up-bad", "after:compose#2"),  # the restore's compose is running
    KillPoint("up-bad", "after:compose#2", group=True),
    KillPoint("up-bad", "after:gate#2"),  # the restore's gate
    KillPoint("up-bad", "before:end"),  # restored, the journal not closed
    # revert
    KillPoint("revert", "before:begin"),
    KillPoint("revert", "after:begin"),
    KillPoint("revert", "after:recorded"),
    KillPoint("revert", "after:compose"),
    KillPoint("revert", "soak", group=True),
    KillPoint("revert", "after:gate"),
]

#: A soak no kill point can outwait: the CLI is still in the gate when the signal lands.
LONG_SOAK = ("--min-healthy", "120s", "--timeout", "180s")
#: A pre_up hook that SIGKILLs the CLI that runs it (its group when the point says so).
PRE_UP_KILL = "kill -KILL $$PPID"
PRE_UP_KILL_GROUP = "kill -KILL -- -$$PPID"

#: The first command after a kill, in turn: every kind must notice the interrupted operation.
NEXT_COMMANDS = [("history",), ("status",), ("up",), ("diff",), ("revert",),
                 ("history", "--json"), ("status", "--json"), ("up",)]


@dataclass
class Outcome:
    point: KillPoint
    killed_after: str = "-"  # the killed CLI's last journal step
    pending: int | None = None  # the revision left pending by the kill
    next_command: str = "-"
    noticed: str = "-"
    healed_by: str = "-"
    lost: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return not self.problems and not self.lost

    def row(self, number: int) -> list[str]:
        pending = "-" if self.pending is None else str(self.pending)
        verdict = "ok" if self.survived else "FAIL: " + "; ".join(self.problems + self.lost)
        return [str(number), self.point.label, self.killed_after, pending, self.next_command,
                self.noticed, self.healed_by, verdict]


class Releases:
    """Two good images to alternate between, and one that crashes."""

    def __init__(self, project: ComposeProject, images: AppImages) -> None:
        self.project = project
        self.good = [f"{project.name}-img:a", f"{project.name}-img:b"]
        for ref in self.good:
            images.build_fresh("healthy", ref, version=ref.rsplit(":", 1)[1])
        self.bad = images.local("crash")
        self.turn = 0

    def next_good(self, *, pre_up: str = "") -> None:
        self.turn += 1
        self.write(self.good[self.turn % 2], pre_up=pre_up)

    def write(self, image: str, *, pre_up: str = "") -> None:
        top = X_ROLLBACK
        if pre_up:
            top = f"x-rollback:\n  timeout: 60s\n  min_healthy: 1s\n  hooks:\n" \
                  f"    pre_up: {pre_up}\n"
        write_compose(self.project, compose_text(image, env={"GREETING": "kill-test"},
                                                 top=top, healthcheck=HEALTHCHECK))


def _journal(project: ComposeProject) -> list[dict[str, Any]]:
    path = project.state_dir / "journal.jsonl"
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _history_file(project: ComposeProject) -> dict[str, Any] | None:
    path = project.state_dir / "history.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())  # raises if not valid JSON
    return data


def _steps_of(project: ComposeProject, pid: int) -> list[str]:
    return [str(r.get("step")) for r in _journal(project) if r.get("pid") == pid]


def _kill_at(project: ComposeProject, point: KillPoint, proc: subprocess.Popen[str]
             ) -> tuple[str, list[str]]:
    """Let the point's kill happen; return the CLI's last journal step and what went wrong."""
    problems: list[str] = []
    if point.at == "soak":
        problems += _kill_when_soaking(proc, group=point.group)  # its thread reads stderr
    try:
        if point.at == "soak":
            proc.wait(timeout=120)
        else:
            proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        problems.append("the kill point was never reached (killed after 120 s)")
    steps = _steps_of(project, proc.pid)
    last = steps[-1] if steps else "-"
    if proc.returncode != -signal.SIGKILL:
        problems.append(f"the CLI was not killed: it exited {proc.returncode} after {last}")
    step, count = point.expected()
    if last != step or (count and steps.count(step) != count):
        problems.append(f"killed after {steps or 'no record'}, not at {point.at}")
    return last, problems


def _kill_when_soaking(proc: subprocess.Popen[str], *, group: bool) -> list[str]:
    """SIGKILL the CLI (or its group) as soon as it says it is soaking; its stderr is read by a
    thread so that a CLI that never gets there cannot keep the test waiting."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 120
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ["the CLI never said it was soaking (120 s)"]
        if line is None:
            return ["the CLI ended before it said it was soaking"]
        if "soaking" in line:
            break
    if group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    return []


def _statuses(project: ComposeProject) -> dict[int, str]:
    data = _history_file(project)
    return {int(r["number"]): str(r["status"]) for r in (data or {}).get("revisions", [])}


def _pending(project: ComposeProject) -> list[int]:
    data = _history_file(project)
    return [int(r["number"]) for r in (data or {}).get("revisions", [])
            if r.get("status") == "pending"]


def _lost(project: ComposeProject) -> list[str]:
    """Files the history names that are missing or do not match; a wrong current.yaml."""
    data = _history_file(project)
    if data is None:
        return ["history.json is missing"]
    lost = []
    deployed = None
    for revision in data["revisions"]:
        path = project.state_dir / revision["file"]
        if not path.is_file():
            lost.append(f"revision {revision['number']}: {revision['file']} missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != revision["sha256"]:
            lost.append(f"revision {revision['number']}: {revision['file']} checksum differs")
        if revision["status"] == "deployed":
            deployed = path
    current = project.state_dir / "current.yaml"
    if deployed is not None and deployed.is_file() and (
            not current.is_file() or current.read_bytes() != deployed.read_bytes()):
        lost.append("current.yaml is not the deployed revision's overlay")
    return lost


def _healthy_pinned(project: ComposeProject) -> list[str]:
    result = run_cli(project, "status", "--json", timeout=60)
    if result.returncode != 0:
        return [f"status --json exited {result.returncode}: {result.stderr.strip()[-200:]}"]
    report = json.loads(result.stdout)
    problems = []
    if report.get("drift"):
        problems.append(f"drift: {[s['drift'] for s in report['services']]}")
    if report.get("current") is None:
        problems.append("no current revision")
    for service in report.get("services", []):
        for container in service.get("containers", []):
            if container.get("state") != "running" or container.get("health") == "unhealthy":
                problems.append(f"{container.get('container')} is {container.get('state')}/"
                                f"{container.get('health')}")
        if not service.get("containers"):
            problems.append(f"{service.get('service')} has no container")
    return problems


def _start(project: ComposeProject, releases: Releases, point: KillPoint
           ) -> subprocess.Popen[str]:
    gates = LONG_SOAK if point.at == "soak" else GATES
    env = {}
    if point.at.startswith(("before:", "after:")):
        env[VARIABLE] = point.at + (":group" if point.group else "")
    if point.operation == "up-good":
        pre_up = ""
        if point.at == "pre_up":
            pre_up = PRE_UP_KILL_GROUP if point.group else PRE_UP_KILL
        releases.next_good(pre_up=pre_up)
        return popen_cli(project, "up", *gates, env=env)
    if point.operation == "up-bad":
        releases.write(releases.bad)
        return popen_cli(project, "up", *gates, env=env)
    return popen_cli(project, "revert", *gates, env=env)


def _heal(project: ComposeProject, releases: Releases, command: tuple[str, ...]
          ) -> subprocess.CompletedProcess[str]:
    if command[0] == "up":
        releases.next_good()
    return run_cli(project, *command, *GATES, timeout=120)


def _one_point(project: ComposeProject, releases: Releases, point: KillPoint,
               number: int) -> Outcome:
    outcome = Outcome(point)
    proc = _start(project, releases, point)
    outcome.killed_after, outcome.problems = _kill_at(project, point, proc)
    try:
        _history_file(project)
    except ValueError as error:
        outcome.problems.append(f"history.json is not valid JSON after the kill: {error}")
    pending = _pending(project)
    outcome.pending = pending[-1] if pending else None
    settled = {n: status for n, status in _statuses(project).items() if status != "pending"}

    # The next command, of whatever kind, notices the interrupted operation.
    command = NEXT_COMMANDS[number % len(NEXT_COMMANDS)]
    outcome.next_command = " ".join(command)
    if command[0] in ("up", "revert"):
        first = _heal(project, releases, command)
    else:
        first = run_cli(project, *command, timeout=60)
    if first.returncode == 4:
        outcome.problems.append(f"the lock blocked `{outcome.next_command}`: "
                                f"{first.stderr.strip()[-200:]}")
    if "Traceback" in first.stderr:
        outcome.problems.append(f"traceback from `{outcome.next_command}`")
    if outcome.pending is not None:
        said = [line for line in first.stderr.splitlines()
                if "interrupted" in line.lower() and str(outcome.pending) in line]
        outcome.noticed = "said so" if said else "silent"
        if not said:
            outcome.problems.append(f"`{outcome.next_command}` did not say that revision "
                                    f"{outcome.pending} was interrupted")
    listing = run_cli(project, "history", "--json", timeout=60)
    if listing.returncode != 0:
        outcome.problems.append(f"history --json exited {listing.returncode}")
    else:
        states = {r["number"]: r["status"] for r in json.loads(listing.stdout)}
        if "pending" in states.values():
            outcome.problems.append(f"still pending after the next command: {states}")
        if outcome.pending is not None and states.get(outcome.pending) != "interrupted":
            outcome.problems.append(f"revision {outcome.pending} is "
                                    f"{states.get(outcome.pending)}, not interrupted")
        # Recovery touches the pending revision only: one the killed operation had already
        # settled (deployed, restored) keeps its status, bar being superseded by a new deploy.
        moved = {n: f"{was} -> {states.get(n)}" for n, was in settled.items()
                 if states.get(n) != was and not (
                     command[0] in ("up", "revert") and (was, states.get(n)) ==
                     ("deployed", "superseded"))}
        if moved:
            outcome.problems.append(f"`{outcome.next_command}` changed settled revisions: "
                                    f"{moved}")

    # One up or revert brings the project to a healthy pinned state.
    if command[0] in ("up", "revert"):
        healer = first
        outcome.healed_by = f"{outcome.next_command} -> {first.returncode}"
    else:
        heal_with = ("revert",) if number % 2 else ("up",)
        healer = _heal(project, releases, heal_with)
        outcome.healed_by = f"{heal_with[0]} -> {healer.returncode}"
    if healer.returncode != 0:
        outcome.problems.append(f"`{outcome.healed_by}`: {healer.stderr.strip()[-300:]}")
    outcome.problems += _healthy_pinned(project)
    outcome.lost = _lost(project)
    # Children of a CLI killed alone (compose, docker events) were ours: end them by group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return outcome


def _reset(project: ComposeProject, releases: Releases) -> bool:
    """After a failed point: one more plain ``up`` of a good release (not a workaround: it is
    only there so that one failure does not hide what the following points would show)."""
    releases.next_good()
    done = run_cli(project, "up", *GATES, timeout=120)
    return done.returncode == 0 and not _healthy_pinned(project)


def test_sigkill_at_every_step_loses_nothing_and_never_sticks(
    project: ComposeProject, images: AppImages, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(POINTS) >= 20
    began = time.monotonic()
    releases = Releases(project, images)
    releases.write(releases.good[0])
    cli(project, "up", *GATES)
    releases.next_good()
    cli(project, "up", *GATES)  # two good revisions: revert has somewhere to go

    outcomes: list[Outcome] = []
    for number, point in enumerate(POINTS, start=1):
        outcome = _one_point(project, releases, point, number)
        outcomes.append(outcome)
        if not outcome.survived and not _reset(project, releases):
            outcome.problems.append("could not get back to a healthy state; stopped here")
            break
    elapsed = time.monotonic() - began

    killed = [o for o in outcomes if not any("not killed" in p or "never" in p
                                             for p in o.problems)]
    survived = [o for o in outcomes if o.survived]
    lost = sorted({item for o in outcomes for item in o.lost})
    rows = [o.row(n) for n, o in enumerate(outcomes, start=1)]
    # Temp files of an atomic write cut off by SIGKILL are litter (git-ignored), not loss.
    litter = sorted(str(p.relative_to(project.state_dir)) for p in project.state_dir.rglob("*")
                    if p.name.endswith(".tmp"))
    text = table(["#", "KILL POINT", "LAST STEP", "PENDING", "NEXT COMMAND", "NOTICED",
                  "HEALED BY", "RESULT"], rows)
    summary = (f"kill test: {len(outcomes)} kill points tried, {len(killed)} killed mid-way, "
               f"{len(survived)} survived, lost: {', '.join(lost) or 'nothing'}; "
               f"temp files left: {len(litter)}; {elapsed:.0f} s\n{text}")
    publish("kill-test", summary, capsys)

    assert len(killed) >= 20, summary
    failed = [o for o in outcomes if not o.survived]
    assert not failed, summary
    final = cli(project, "history", "--json")
    assert "pending" not in {r["status"] for r in json.loads(final.stdout)}, describe(final)
    assert not _lost(project)
