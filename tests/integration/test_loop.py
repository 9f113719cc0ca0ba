"""The whole loop of issue 13, in one test (README, "The whole loop"): a release committed to
git is deployed with ``up --commit --watch``; it passes its gates; during the watch an alert
fires in a real Alertmanager (Debian's, on loopback); the alertmanager gate, still running in
the watch, fails; the last good revision is put back on its own; and the failed revision is
committed to git beside the deploy's own commit.

The pieces are each tested on their own elsewhere (``test_git.py``, ``test_watch.py``,
``test_alertmanager_gate.py``, ``test_alertmanager_e2e.py`` for a real Prometheus rule,
``test_example_ci.py`` for the pipeline script); this one proves they hold together.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from gates_helpers import assert_deployed, assert_rolled_back, popen_cli, service, up, write_compose

from support.alertmanager import Alertmanager
from support.compose_project import ComposeProject
from support.testimages import AppImages

pytestmark = pytest.mark.docker

ALERT = {"alertname": "HighErrorRate", "service": "web", "severity": "page"}
FILTER = ['service="web"', 'severity=~"critical|page"']


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def _release(project: ComposeProject, images: AppImages, alertmanager: Alertmanager,
             release: int) -> None:
    gate = (f"min_healthy: 1s\ngates:\n  - alertmanager: {alertmanager.url}\n"
            f"    filter: {json.dumps(FILTER)}\n")
    write_compose(project, {"web": service(images.local("healthy"),
                                           env={"RELEASE": str(release)}, rollback=gate)})
    _git(project.dir, "add", "compose.yaml")
    _git(project.dir, "commit", "-q", "-m", f"release {release}")


def test_commit_deploy_watch_alert_revert_commit(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    repo = project.dir
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Ada Tester")
    _git(repo, "config", "user.email", "ada@example.invalid")
    _release(project, images, alertmanager, 1)
    assert_deployed(up(project, "--commit", code=0)[1], 1)

    _release(project, images, alertmanager, 2)
    process = popen_cli(project, "up", "--json", "--commit", "--watch", "5m")
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:  # deployed, committed, and now watched
        seen.append(line)
        if "watching revision 2" in line:
            break
    else:
        process.wait(timeout=30)
        raise AssertionError("the watch never started:\n" + "".join(seen))
    deployed = _git(repo, "log", "-1", "--format=%s")
    alertmanager.fire(ALERT)
    stdout, rest = process.communicate(timeout=180)
    assert process.returncode == 1, "".join(seen) + rest
    data = json.loads(stdout)
    assert data["watch"] == "failed", data
    assert_rolled_back(project, data, revision=2, restored=1, running={"web": "RELEASE=1"},
                       reason=("HighErrorRate", "during the watch"))
    assert deployed == f"compose-rollback: {project.name} revision 2 deployed\n"
    assert data["commit"] == _git(repo, "rev-parse", "HEAD").strip(), data
    assert _git(repo, "log", "-1", "--format=%s") == \
        f"compose-rollback: {project.name} revision 2 failed (restored 1)\n"
    assert _git(repo, "status", "--porcelain", "--", ".rollback") == ""
