"""Exit codes never lie, against the real engine: a bug is 70 and says where it stopped; an
``OSError`` while a revision is gated puts the last good one back (1), or says it could not (3).

The faults come from ``support/faulty_cli.py``: the real CLI in its own process, with one
method of the engine seam made to raise. Before these fixes a bug exited 1 (the code of a
clean rollback) and an ``OSError`` in the gate skipped the restore and left the revision
``pending``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest
from robust_helpers import FAST, compose_text, up, write_compose

from support.compose_project import REPO_ROOT, ComposeProject
from support.helpers import clean_env, describe, run_command
from support.testimages import AppImages

pytestmark = pytest.mark.docker

FAULTY_CLI = REPO_ROOT / "tests" / "support" / "faulty_cli.py"


def faulty(project: ComposeProject, fault: str, *args: str) -> Any:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return run_command([sys.executable, str(FAULTY_CLI), fault, "-p", project.name, *args],
                       cwd=project.dir, env=clean_env({"PYTHONPATH": python_path}),
                       check=None, timeout=240)


def history(project: ComposeProject) -> dict[int, dict[str, Any]]:
    data = json.loads((project.state_dir / "history.json").read_text())
    return {int(r["number"]): r for r in data["revisions"]}


def journal_end(project: ComposeProject) -> dict[str, Any]:
    lines = (project.state_dir / "journal.jsonl").read_text().splitlines()
    last: dict[str, Any] = json.loads(lines[-1])
    return last


def greeting(project: ComposeProject) -> str:
    env = project.container("app")["Config"]["Env"]
    return next(e for e in env if e.startswith("GREETING="))


@pytest.fixture
def deployed(project: ComposeProject, images: AppImages) -> ComposeProject:
    """Revision 1 deployed and healthy; the compose file then says GREETING=two."""
    write_compose(project, compose_text(images.local("healthy"), env={"GREETING": "one"}))
    up(project)
    write_compose(project, compose_text(images.local("healthy"), env={"GREETING": "two"}))
    return project


def test_a_bug_mid_deploy_is_70_and_the_journal_says_where(project: ComposeProject,
                                                           images: AppImages) -> None:
    write_compose(project, compose_text(images.local("healthy")))
    done = faulty(project, "tag=ValueError", "up", *FAST)
    assert done.returncode == 70, describe(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, describe(done)
    assert lines[0] == (
        "compose-rollback: unexpected error: ValueError: injected by the test; revision 1 "
        "stopped during 'recorded' and is marked interrupted; no container was changed; this "
        "is a bug: to see the traceback, run `compose-rollback --debug up …` again")
    first = history(project)[1]
    assert first["status"] == "interrupted", first
    assert "unexpected error during 'recorded': ValueError" in first["reason"]
    end = journal_end(project)
    assert (end["step"], end["crashed"], end["during"], end["applied"]) == (
        "end", "ValueError: injected by the test", "recorded", False)
    assert project.containers() == []


def test_debug_shows_the_traceback_and_keeps_70(project: ComposeProject,
                                                images: AppImages) -> None:
    write_compose(project, compose_text(images.local("healthy")))
    done = faulty(project, "tag=ValueError", "--debug", "up", *FAST)
    assert done.returncode == 70, describe(done)
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(
        "compose-rollback: unexpected error: ValueError: injected by the test; revision 1")


def test_an_oserror_in_the_gate_restores_the_last_good_revision(
        deployed: ComposeProject) -> None:
    done = faulty(deployed, "events=OSErrorx1", "up", *FAST, "--json")
    assert done.returncode == 1, describe(done)
    result = json.loads(done.stdout)
    assert (result["outcome"], result["exit_code"], result["restored"]) == ("rolled_back", 1, 1)
    second = history(deployed)[2]
    assert (second["status"], second["restored_to"]) == ("failed", 1), second
    assert "unexpected error: OSError: [Errno 24] Too many open files" in second["reason"]
    assert greeting(deployed) == "GREETING=one"
    assert deployed.health("app") == "healthy"
    assert journal_end(deployed)["step"] == "end"


def test_an_oserror_while_restoring_too_is_3_and_says_the_state(
        deployed: ComposeProject) -> None:
    done = faulty(deployed, "events=OSError", "up", *FAST, "--json")
    assert done.returncode == 3, describe(done)
    result = json.loads(done.stdout)
    assert (result["outcome"], result["exit_code"]) == ("unrestored", 3)
    assert "restoring revision 1 failed too: unexpected error: OSError" in result["message"]
    assert "check `docker compose ps` and the logs" in result["message"]
    assert history(deployed)[2]["status"] == "failed"  # not pending for ever
