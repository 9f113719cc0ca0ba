"""Issue 5: the project lock (two concurrent ``up``s, a lock left by a killed holder,
``--wait-lock``) and secrets that must never reach a file or ``--json`` output."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from robust_helpers import (
    FAST,
    TOLERANT_HEALTHCHECK,
    X_ROLLBACK,
    cli,
    compose_text,
    error_problems,
    history,
    popen_cli,
    run_cli,
    statuses,
    up,
    write_compose,
)

from compose_rollback.testhooks import VARIABLE
from support.compose_project import ComposeProject
from support.helpers import describe, free_port, unique_name, wait_for
from support.testimages import AppImages

pytestmark = pytest.mark.docker

#: A soak long enough that the holder keeps the lock while the test does things.
SLOW_SOAK = ("--min-healthy", "6s", "--timeout", "60s")
#: Seconds a holder keeps the lock after a waiter started (``--wait-lock``).
HOLD = 2.0


def _finish(proc: subprocess.Popen[str], started: float,
            timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], float]:
    out, err = proc.communicate(timeout=timeout)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done, time.monotonic() - started


def _finish_all(procs: list[subprocess.Popen[str]], started: float, timeout: float = 180
                ) -> list[tuple[subprocess.CompletedProcess[str], float]]:
    """Wait for every process, noting when each one exited (not when we got round to it)."""
    ended: dict[int, float] = {}
    deadline = started + timeout
    while len(ended) < len(procs) and time.monotonic() < deadline:
        for index, proc in enumerate(procs):
            if index not in ended and proc.poll() is not None:
                ended[index] = time.monotonic() - started
        time.sleep(0.02)
    return [(_finish(proc, started)[0], ended.get(index, timeout))
            for index, proc in enumerate(procs)]


def _journal_steps(project: ComposeProject, pid: int) -> list[str]:
    path = project.state_dir / "journal.jsonl"
    steps = []
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("pid") == pid:
            steps.append(str(record.get("step")))
    return steps


def _holding(project: ComposeProject, pid: int, step: str = "apply") -> bool:
    return step in _journal_steps(project, pid)


def _at_the_lock(project: ComposeProject, pid: int) -> bool:
    """The CLI ``pid`` has the project's lock file open and has journaled nothing: it is
    waiting for the lock (it opens the file only to take the lock)."""
    lock = (project.state_dir / "lock").resolve()
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    opened = False
    for fd in fds:
        try:
            opened = opened or fd.readlink() == lock
        except OSError:
            continue
    return opened and not _journal_steps(project, pid)


def _new_release(project: ComposeProject, images: AppImages, greeting: str,
                 top: str = X_ROLLBACK) -> None:
    write_compose(project, compose_text(images.local("healthy"), env={"GREETING": greeting},
                                        top=top))


class HeldGate:
    """A project gate (``tcp`` on a free loopback port) that passes once the test opens the
    port: an ``up`` of a release carrying it holds the lock, in its gate, for exactly as long
    as the test needs, however loaded the machine is (a soak long enough "for sure" was
    either too short on a bad day or a wait on every other day). Refused connections never
    fail it (``failures`` far beyond its timeout); the gate's timeout still bounds it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._listener: socket.socket | None = None

    def settings(self, *, timeout: str = "120s") -> str:
        return (f"x-rollback:\n  timeout: {timeout}\n  min_healthy: 1s\n  gates:\n"
                f"    - tcp: 127.0.0.1:{self.port}\n      interval: 200ms\n"
                f"      failures: 1000000\n")

    def open(self) -> None:
        """Let the gate pass: its next probe (within 0.2 s) connects."""
        if self._listener is None:
            self._listener = socket.create_server(("127.0.0.1", self.port))

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None


# -- two concurrent ups -----------------------------------------------------------------------


class _Raced:
    """The project of the three races: each starts from the revision the one before deployed,
    so only the first pays for a first deploy. A race that left anything but its new revision
    deployed makes the next one start again in a project of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.projects: list[ComposeProject] = []

    def ready(self, images: AppImages) -> tuple[ComposeProject, dict[int, str]]:
        """A project whose last revision is deployed (every earlier one superseded), and its
        statuses."""
        if self.projects:
            project = self.projects[-1]
            before = statuses(project)
            last = max(before)
            if before == {**dict.fromkeys(before, "superseded"), last: "deployed"}:
                return project, before
        project = ComposeProject(self.root)
        self.projects.append(project)
        _new_release(project, images, "one")
        assert up(project)["revision"] == 1
        return project, {1: "deployed"}


@pytest.fixture(scope="module")
def raced(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Raced]:
    made = _Raced(tmp_path_factory.mktemp("raced"))
    try:
        yield made
    finally:
        for project in made.projects:
            project.cleanup()


@pytest.mark.serial  # compares the two CLIs' run times
@pytest.mark.parametrize("attempt", range(3))
def test_two_concurrent_ups_exactly_one_deploys(
    raced: _Raced, images: AppImages, attempt: int
) -> None:
    project, before = raced.ready(images)
    last = max(before)
    _new_release(project, images, f"race {attempt}")

    # What starting the CLI and reading the model costs on this machine right now: the loser
    # pays that before it reaches the lock (and pays it while the winner does the same).
    began = time.monotonic()
    cli(project, "up", "--dry-run", *FAST)
    baseline = time.monotonic() - began

    started = time.monotonic()
    procs = [popen_cli(project, "up", *SLOW_SOAK) for _ in range(2)]
    done = _finish_all(procs, started)
    codes = sorted(result.returncode for result, _ in done)
    assert codes == [0, 4], "\n\n".join(describe(r) for r, _ in done)

    (winner, winner_seconds), (loser, loser_seconds) = sorted(done, key=lambda d: d[0].returncode)
    winner_pid = procs[[r for r, _ in done].index(winner)].pid
    problems = error_problems(loser, code=4, needles=(f"pid {winner_pid}", socket.gethostname(),
                                                      "up"))
    assert not problems, "\n".join([*problems, describe(loser)])
    # "Within a second": the loser does not wait for the winner (whose soak alone is 6 s), and
    # takes little more than the start-up both of them pay.
    timing = (f"loser {loser_seconds:.1f} s, winner {winner_seconds:.1f} s, "
              f"dry run alone {baseline:.1f} s")
    assert winner_seconds - loser_seconds > 4.0, timing
    assert loser_seconds < max(3.0, 2 * baseline + 1.0), timing
    assert statuses(project) == {**dict.fromkeys(before, "superseded"), last + 1: "deployed"}
    assert [r["number"] for r in history(project)] == [*sorted(before), last + 1]


def test_every_locking_command_is_refused_while_up_holds_the_lock(
    project: ComposeProject, images: AppImages
) -> None:
    _new_release(project, images, "one")
    up(project)
    _new_release(project, images, "two")
    up(project)
    gate = HeldGate()
    _new_release(project, images, "three", top=gate.settings())
    started = time.monotonic()
    # Its gate passes only once the five refused commands and the two readers are done.
    holder = popen_cli(project, "up")
    wait_for(lambda: _holding(project, holder.pid, "gate") or holder.poll() is not None, 60,
             what="the holder in its gate")
    assert holder.poll() is None, "the holder finished before the test could race it"

    for args in (("up", *FAST), ("revert", *FAST), ("prune", "--keep", "1"), ("pin",),
                 ("revert", "--to", "1", *FAST)):
        began = time.monotonic()
        result = run_cli(project, *args, timeout=60)
        seconds = time.monotonic() - began
        problems = error_problems(result, code=4, needles=(f"pid {holder.pid}",
                                                           socket.gethostname(), "up"))
        assert not problems, "\n".join([*problems, describe(result)])
        assert seconds < 15.0, f"`{' '.join(args)}` took {seconds:.1f} s to be refused"

    # Reading commands do not need the lock, and must not take an operation in flight for an
    # interrupted one.
    seen = json.loads(cli(project, "history", "--json").stdout)
    assert {r["number"]: r["status"] for r in seen}[3] == "pending", seen
    cli(project, "status", "--json")
    assert holder.poll() is None, "the test took too long: the holder is done"
    gate.open()
    try:
        result, _ = _finish(holder, started)
    finally:
        gate.close()
    assert result.returncode == 0, describe(result)
    assert statuses(project) == {1: "superseded", 2: "superseded", 3: "deployed"}
    assert "interrupted" not in result.stderr


def test_wait_lock_waits_for_the_holder_then_proceeds(
    project: ComposeProject, images: AppImages
) -> None:
    _new_release(project, images, "one")
    up(project)
    gate = HeldGate()
    _new_release(project, images, "two", top=gate.settings())
    started = time.monotonic()
    holder = popen_cli(project, "up")
    wait_for(lambda: _holding(project, holder.pid, "gate") or holder.poll() is not None, 60,
             what="the holder in its gate")
    waiter_started = time.monotonic()
    waiter = popen_cli(project, "revert", "--wait-lock", "2m", *FAST)
    # The holder keeps the lock until the waiter is waiting for it, and for at least HOLD
    # seconds after the waiter started: what the waiter's run time is checked against.
    wait_for(lambda: _at_the_lock(project, waiter.pid) or waiter.poll() is not None, 60,
             what="the waiter at the lock")
    time.sleep(max(0.0, waiter_started + HOLD - time.monotonic()))
    assert holder.poll() is None and waiter.poll() is None, "the holder let go too early"
    gate.open()
    try:
        waited, waiter_seconds = _finish(waiter, waiter_started)
        held, _ = _finish(holder, started)
    finally:
        gate.close()
    assert held.returncode == 0, describe(held)
    assert waited.returncode == 0, describe(waited)
    assert waiter_seconds > HOLD, f"the waiter cannot have waited for a {HOLD} s hold"
    assert statuses(project) == {1: "superseded", 2: "superseded", 3: "deployed"}

    # A bounded wait that runs out is refused like no wait at all, naming the holder.
    gate = HeldGate()
    _new_release(project, images, "four", top=gate.settings())
    holder = popen_cli(project, "up")
    wait_for(lambda: _holding(project, holder.pid, "gate") or holder.poll() is not None, 60,
             what="the holder in its gate")
    began = time.monotonic()
    short = run_cli(project, "revert", "--wait-lock", "1s", *FAST, timeout=60)
    short_seconds = time.monotonic() - began
    assert holder.poll() is None, "the holder let go before the short wait ran out"
    gate.open()
    try:
        held, _ = _finish(holder, started)
    finally:
        gate.close()
    problems = error_problems(short, code=4, needles=(f"pid {holder.pid}",))
    assert not problems, "\n".join([*problems, describe(short)])
    assert short_seconds >= 1.0
    assert held.returncode == 0, describe(held)


@pytest.mark.parametrize("next_command", ["up", "revert"])
def test_lock_of_a_killed_holder_is_taken_over(
    project: ComposeProject, images: AppImages, next_command: str
) -> None:
    _new_release(project, images, "one")
    up(project)
    _new_release(project, images, "two")
    up(project)
    _new_release(project, images, "three")
    # SIGKILLed by the test-only kill point right after it journals its gate (lock held).
    holder = popen_cli(project, "up", *SLOW_SOAK, env={VARIABLE: "after:gate"})
    holder.communicate(timeout=120)
    assert holder.returncode == -signal.SIGKILL, holder.returncode
    assert _journal_steps(project, holder.pid)[-1] == "gate"
    lock = project.state_dir / "lock"
    left: Any = json.loads(lock.read_text())
    assert left["pid"] == holder.pid  # the dead holder's description is still in the file

    files_before = sorted(p.name for p in project.state_dir.iterdir())
    began = time.monotonic()
    result = run_cli(project, next_command, *FAST, timeout=120)
    assert result.returncode == 0, describe(result)
    took_over = [line for line in result.stderr.splitlines()
                 if str(holder.pid) in line and "lock" in line.lower()]
    assert took_over, f"no word about taking over the lock of pid {holder.pid}\n" \
                      f"{describe(result)}"
    assert any("interrupted" in line and "3" in line for line in result.stderr.splitlines()), \
        describe(result)
    assert time.monotonic() - began < 60
    assert statuses(project)[3] == "interrupted"
    assert statuses(project)[4] == "deployed"
    # Nothing had to be deleted by hand; the lock is free for the next command straight away.
    assert set(files_before) <= {p.name for p in project.state_dir.iterdir()}
    again = run_cli(project, "pin", timeout=60)
    assert again.returncode == 0, describe(again)
    assert "no longer running" not in again.stderr


# -- secrets ----------------------------------------------------------------------------------


def _secret(stem: str) -> str:
    return unique_name(f"crt-secret-{stem}", hex_chars=16)


def _container_env(project: ComposeProject) -> dict[str, str]:
    env = project.container("app")["Config"]["Env"] or []
    return dict(item.split("=", 1) for item in env)


def test_secrets_never_reach_a_file_or_json_output(
    project: ComposeProject, images: AppImages
) -> None:
    dotenv_secret, process_secret, envfile_secret = (
        _secret("dotenv"), _secret("process"), _secret("envfile"))
    dotenv = project.write_file(".env", f"DOTENV_SECRET={dotenv_secret}\n")
    envfile = project.write_file("app.env", f"ENVFILE_SECRET={envfile_secret}\n")
    environ = {"TOKEN": process_secret}
    healthy, crash = images.local("healthy"), images.local("crash")

    def release(image: str, greeting: str) -> None:
        write_compose(project, "\n".join([
            "x-rollback: {timeout: 60s, min_healthy: 1s}",
            "services:",
            "  app:",
            f"    image: {image}",
            "    pull_policy: never",
            TOLERANT_HEALTHCHECK,
            "    environment:",
            f"      - GREETING={greeting}",
            "      - DOTENV_SECRET=${DOTENV_SECRET}",
            "      - TOKEN",  # passed through from the environment of the command
            "    env_file: [app.env]",
            "    labels:",
            '      org.example.note: "${DOTENV_SECRET}"',
            "",
        ]))

    outputs: list[tuple[str, str]] = []
    leaks: list[str] = []
    needles = (dotenv_secret, process_secret, envfile_secret)

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = cli(project, *args, env=environ, check=code)
        outputs.append((" ".join(args), result.stdout + result.stderr))
        # Look after every command, so a file written and removed later is caught too.
        for path in sorted(project.dir.rglob("*")):
            if not path.is_file() or path in (dotenv, envfile):
                continue
            data = path.read_bytes()
            leaks.extend(f"{n[:22]}… in {path.relative_to(project.dir)} after `{' '.join(args)}`"
                         for n in needles if n.encode() in data)
        return result

    release(healthy, "one")
    text = (project.dir / "compose.yaml").read_text()
    assert "- TOKEN\n" in text and "${DOTENV_SECRET}" in text and "app.env" in text, text
    run("up", "--dry-run", "--json", *FAST)
    run("up", "--json", *FAST)
    env = _container_env(project)
    assert (env["DOTENV_SECRET"], env["TOKEN"], env["ENVFILE_SECRET"]) == (
        dotenv_secret, process_secret, envfile_secret)
    release(healthy, "two")
    run("up", *FAST)
    release(crash, "three")
    run("up", "--json", *FAST, code=1)  # a failed up, rolled back
    run("up", *FAST, code=1)
    run("revert", "--json", *FAST)
    run("revert", "--to", "1", *FAST)
    run("pin", "--json")
    run("pin")
    for args in (("history",), ("status",), ("diff",), ("diff", "1", "2")):
        run(*args, "--json")
        run(*args)

    env = _container_env(project)  # what runs now still has every secret
    assert (env["DOTENV_SECRET"], env["TOKEN"], env["ENVFILE_SECRET"]) == (
        dotenv_secret, process_secret, envfile_secret)
    assert project.container("app")["Config"]["Labels"]["org.example.note"] == dotenv_secret
    assert len(history(project)) >= 6

    leaks += [f"{needle[:22]}… in the output of `{args}`" for needle in needles
              for args, out in outputs if needle in out]
    assert not leaks, "\n".join(leaks)
    first = (project.state_dir / "revisions" / "0001.yaml").read_text()
    assert "${DOTENV_SECRET}" in first  # kept as a reference, resolved only at deploy time
    assert Path(project.state_dir / "history.json").is_file()
