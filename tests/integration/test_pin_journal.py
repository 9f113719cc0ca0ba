"""Issue 10: ``pin`` is journaled like ``up``. Killed half-way (SIGKILL, after it recorded
its revision and while it creates the retention tag), its revision does not stay ``pending``
for ever: the next command, even a read-only one, marks it interrupted and says so.

The kill point is deterministic: a ``docker`` first on the CLI's PATH passes every call to the
real one, except ``image tag``, where it SIGKILLs the CLI that called it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from robust_helpers import cli, cli_json, compose_text, history, write_compose

from support.compose_project import ComposeProject
from support.testimages import AppImages

pytestmark = pytest.mark.docker


def _killing_docker(tmp_path: Path) -> dict[str, str]:
    """The environment for a CLI whose ``docker image tag`` kills it."""
    real = shutil.which("docker")
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "docker"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" image tag "*) kill -KILL "$PPID"; exit 1 ;; esac\n'
        f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_pin_killed_after_recording_is_marked_interrupted_by_the_next_command(
        project: ComposeProject, images: AppImages, tmp_path: Path) -> None:
    write_compose(project, compose_text(images.local("healthy")))
    project.compose("up", "--detach", "--wait")

    killed = cli(project, "pin", env=_killing_docker(tmp_path), check=None)
    assert killed.returncode == -9, (killed.returncode, killed.stderr)
    journal = (project.state_dir / "journal.jsonl").read_text()
    assert '"step": "recorded"' in journal and '"step": "end"' not in journal, journal

    listing, revisions = cli_json(project, "history")
    assert [(r["number"], r["kind"], r["status"]) for r in revisions] == \
        [(1, "pin", "interrupted")], revisions
    assert "revision 1 was interrupted" in listing.stderr, listing.stderr

    # And the project can be adopted again, by a pin that is not killed.
    _, pinned = cli_json(project, "pin")
    assert (pinned["number"], pinned["status"]) == (2, "deployed"), pinned
    assert [r["status"] for r in history(project)] == ["interrupted", "deployed"]
