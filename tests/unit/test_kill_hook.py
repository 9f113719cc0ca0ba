"""The test-only kill point in ``Journal.write`` (``COMPOSE_ROLLBACK_TEST_KILL_AT``).

Each case runs a child Python that writes the journal of an ``up`` that restores (``begin``,
``recorded``, ``apply``, ``compose``, ``gate``, ``restore``, ``apply``, ``compose``, ``gate``,
``end``) and checks where it died. The kill tests (tests/integration/test_kill.py) rely on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compose_rollback.testhooks import VARIABLE

STEPS = ["recorded", "apply", "compose", "gate", "restore", "apply", "compose", "gate"]

CHILD = f"""
import subprocess, sys
from pathlib import Path
from compose_rollback.lock import Journal
root = Path(sys.argv[1])
if len(sys.argv) > 2:  # a child in the same process group, for the group kill
    sleeper = subprocess.Popen(["sleep", "60"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    (root / "sleeper").write_text(str(sleeper.pid))
journal = Journal(root)
journal.begin("up", revision=7)
for step in {STEPS!r}:
    journal.write(step, revision=7)
journal.end(revision=7)
"""


def _run(tmp_path: Path, spec: str | None, *, group_child: bool = False,
         new_session: bool = False) -> tuple[int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != VARIABLE}
    if spec is not None:
        env[VARIABLE] = spec
    args = [sys.executable, "-c", CHILD, str(tmp_path)] + (["group"] if group_child else [])
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60,
                          start_new_session=new_session, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    journal = tmp_path / "journal.jsonl"
    lines = journal.read_text().splitlines() if journal.exists() else []
    return done.returncode, [json.loads(line)["step"] for line in lines]


@pytest.mark.parametrize("spec", [None, "", "after:nosuchstep", "after:apply#3"])
def test_without_a_matching_point_the_journal_is_written_whole(tmp_path: Path,
                                                               spec: str | None) -> None:
    assert _run(tmp_path, spec) == (0, ["begin", *STEPS, "end"])


@pytest.mark.parametrize(("spec", "steps"), [
    ("before:begin", []),
    ("after:begin", ["begin"]),
    ("before:apply", ["begin", "recorded"]),
    ("after:compose", ["begin", "recorded", "apply", "compose"]),
    ("after:compose#2", ["begin", *STEPS[:6], "compose"]),
    ("before:gate#2", ["begin", *STEPS[:7]]),
    ("after:restore", ["begin", *STEPS[:5]]),
    ("before:end", ["begin", *STEPS]),
])
def test_the_process_dies_of_sigkill_at_exactly_that_record(
    tmp_path: Path, spec: str, steps: list[str]
) -> None:
    assert _run(tmp_path, spec) == (-signal.SIGKILL, steps)


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for a reaper (it was SIGKILLed)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_group_kills_the_group_the_process_leads(tmp_path: Path) -> None:
    code, steps = _run(tmp_path, "after:gate:group", group_child=True, new_session=True)
    assert (code, steps) == (-signal.SIGKILL, ["begin", *STEPS[:4]])
    assert _gone(int((tmp_path / "sleeper").read_text()))


def test_group_never_kills_a_group_the_process_only_belongs_to(tmp_path: Path) -> None:
    """Not a group leader (here: in pytest's group), it kills itself alone."""
    code, steps = _run(tmp_path, "after:gate:group", group_child=True)
    assert (code, steps) == (-signal.SIGKILL, ["begin", *STEPS[:4]])
    sleeper = int((tmp_path / "sleeper").read_text())
    try:
        os.kill(sleeper, 0)  # still alive: it was not in a group its parent leads
    finally:
        os.kill(sleeper, signal.SIGKILL)
