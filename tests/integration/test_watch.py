"""The watch window after a deploy (issue 13): ``up --watch DURATION`` and ``watch [--for]``.

Against the real engine. Every moment is triggered from outside and seen from outside: the
watcher's marker beside the lock (``watch-<pid>.tmp``) says the watch has begun; then the test
kills a container, makes the app's /health fail (``touch /tmp/fail-health`` inside it), sends
SIGINT or runs ``revert``, and reads what the CLI and the engine report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from core_helpers import (
    FAST,
    X_ROLLBACK,
    fresh_image,
    history,
    running_image,
    service,
    services,
)
from core_helpers import write_compose as write_services
from gates_helpers import webhook_receiver

from support.compose_project import REPO_ROOT, ComposeProject
from support.helpers import clean_env, docker, free_port, wait_for
from support.testimages import AppImages


@dataclass
class Background:
    """Our CLI running as a child process; its output goes to files, read at the end."""

    proc: subprocess.Popen[str]
    out: Path
    err: Path

    def finish(self, timeout: float = 180.0) -> tuple[int, str, str]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"still running after {timeout:g}s:\n"
                                 f"{self.err.read_text()}") from None
        return self.proc.returncode, self.out.read_text(), self.err.read_text()

    def result(self, timeout: float = 180.0) -> tuple[int, dict[str, Any], str]:
        code, out, err = self.finish(timeout)
        try:
            return code, json.loads(out), err
        except ValueError:
            raise AssertionError(f"not JSON (exit {code}):\n{out}\n{err}") from None


def start(project: ComposeProject, *args: str, env: dict[str, str] | None = None) -> Background:
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    tag = f"{time.monotonic_ns()}"
    out, err = project.dir.parent / f"{tag}.out", project.dir.parent / f"{tag}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "compose_rollback", "-p", project.name, *args],
            cwd=project.dir, env=clean_env({"PYTHONPATH": python_path, **(env or {})}),
            stdout=stdout,
            stderr=stderr, text=True, start_new_session=True)
    return Background(proc, out, err)


def watching(project: ComposeProject, job: Background, timeout: float = 120.0) -> None:
    """Wait until the watch has begun: its marker is beside the lock."""
    marker = project.state_dir / f"watch-{job.proc.pid}.tmp"
    wait_for(lambda: marker.exists() or job.proc.poll() is not None, timeout,
             what="the watch marker")
    assert job.proc.poll() is None, job.finish()


def two_releases(project: ComposeProject, images: AppImages, *, variant: str = "healthy",
                 extra: str = "") -> tuple[str, str]:
    """Revision 1 deployed (release v1); compose.yaml then names release v2. The image ids."""
    v1_ref, v1 = fresh_image(images, project, "v1", variant)
    v2_ref, v2 = fresh_image(images, project, "v2", variant)
    write_services(project, services(app=service(v1_ref, extra=extra)))
    project.run("up", *FAST, check=0, timeout=240)
    write_services(project, services(app=service(v2_ref, extra=extra)))
    return v1, v2


@pytest.mark.docker
def test_a_crash_during_the_watch_reverts_and_history_says_so(
    project: ComposeProject, images: AppImages
) -> None:
    with webhook_receiver() as hook:
        v1, v2 = two_releases(project, images)
        text = (project.dir / "compose.yaml").read_text()
        assert text.startswith(X_ROLLBACK), text
        hooks = (f"hooks: {{webhook: '{hook.url}', "
                 "on_rollback: 'echo $$COMPOSE_ROLLBACK_REVISION > on_rollback.out'}")
        text = text.replace(X_ROLLBACK, X_ROLLBACK.replace("}\n", f", {hooks}}}\n"), 1)
        project.write_file("compose.yaml", text)
        job = start(project, "up", *FAST, "--watch", "60s", "--json")
        watching(project, job)
        assert running_image(project, "app") == v2
        docker("kill", project.container("app")["Id"])
        code, data, err = job.result()
        payloads = hook.payloads()
    assert code == 1, err
    assert (data["outcome"], data["revision"], data["restored"]) == ("rolled_back", 2, 1), data
    assert data["watch"] == "failed"
    assert "during the watch" in data["failure"]["reason"], data
    assert running_image(project, "app") == v1
    wait_for(lambda: project.health("app") == "healthy", 20, what="revision 1 healthy again")
    revs = {r["number"]: r for r in history(project)}
    assert (revs[1]["status"], revs[2]["status"]) == ("deployed", "failed"), revs
    assert "exited with code 137" in revs[2]["reason"], revs[2]
    assert "during the watch" in revs[2]["reason"] and revs[2]["restored_to"] == 1
    assert (project.state_dir / "current.yaml").read_bytes() == \
        (project.state_dir / "revisions" / "0001.yaml").read_bytes()
    assert (project.dir / "on_rollback.out").read_text().strip() == "2"
    assert [(p["outcome"], p["revision"], p["restored"]) for p in payloads] == \
        [("deployed", 2, None), ("rolled_back", 2, 1)], payloads
    assert not list(project.state_dir.glob("watch-*.tmp"))


@pytest.mark.docker
def test_a_revision_failing_its_watch_is_committed_to_git_as_failed(
    project: ComposeProject, images: AppImages
) -> None:
    """``up --watch --commit``: the deploy's commit says deployed; the watch's failure is a
    second commit saying failed and what was restored."""
    gitconfig = project.dir.parent / "empty.gitconfig"
    gitconfig.write_text("")
    git_env = {"GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(project.dir), *args], capture_output=True,
                              text=True, check=True, env={**os.environ, **git_env}).stdout

    two_releases(project, images)
    git("init", "-q", "-b", "main")
    git("config", "user.name", "Ada Tester")
    git("config", "user.email", "ada@example.invalid")
    git("add", "compose.yaml")
    git("commit", "-q", "-m", "compose file")
    job = start(project, "up", *FAST, "--watch", "60s", "--commit", "--json", env=git_env)
    watching(project, job)
    deployed = git("log", "-1", "--format=%s")
    docker("kill", project.container("app")["Id"])
    code, data, err = job.result()
    assert code == 1, err
    assert (data["outcome"], data["watch"]) == ("rolled_back", "failed"), data
    assert deployed == f"compose-rollback: {project.name} revision 2 deployed\n", deployed
    head = git("rev-parse", "HEAD").strip()
    assert data["commit"] == head, data
    assert git("log", "-1", "--format=%s") == \
        f"compose-rollback: {project.name} revision 2 failed (restored 1)\n"
    recorded = json.loads(git("show", f"HEAD:.rollback/{project.name}/history.json"))
    assert [r["status"] for r in recorded["revisions"]] == ["deployed", "failed"], recorded
    assert git("status", "--porcelain", "--", f".rollback/{project.name}") == ""


@pytest.mark.docker
def test_a_good_release_watched_for_3s_stays_deployed(
    project: ComposeProject, images: AppImages
) -> None:
    _, v2 = two_releases(project, images)
    began = time.monotonic()
    result = project.run("up", *FAST, "--watch", "3s", "--json", check=0, timeout=240)
    data = json.loads(result.stdout)
    assert (data["outcome"], data["revision"], data["watch"]) == ("deployed", 2, "passed"), data
    assert time.monotonic() - began >= 3
    assert "watching revision 2 for 3s" in result.stderr
    assert {r["number"]: r["status"] for r in history(project)} == \
        {1: "superseded", 2: "deployed"}
    assert running_image(project, "app") == v2


@pytest.mark.docker
def test_sigint_during_the_watch_ends_it_without_reverting(
    project: ComposeProject, images: AppImages
) -> None:
    _, v2 = two_releases(project, images)
    job = start(project, "up", *FAST, "--watch", "60s", "--json")
    watching(project, job)
    os.kill(job.proc.pid, signal.SIGINT)
    code, data, err = job.result()
    assert code == 130, err
    assert (data["outcome"], data["watch"]) == ("watch_interrupted", "interrupted"), data
    assert "watch ended by interrupt; revision 2 stays deployed" in err
    assert {r["number"]: r["status"] for r in history(project)} == \
        {1: "superseded", 2: "deployed"}
    assert running_image(project, "app") == v2


@pytest.mark.docker
def test_a_revert_during_a_detached_watch_ends_it_and_the_watcher_does_nothing(
    project: ComposeProject, images: AppImages
) -> None:
    v1, _ = two_releases(project, images)
    project.run("up", *FAST, check=0, timeout=240)
    job = start(project, "watch", "--for", "60s", "--json")
    watching(project, job)
    revert = project.run("revert", *FAST, "--json", check=None, timeout=240)
    assert revert.returncode == 0, revert.stderr  # not 4: the watcher holds no lock
    code, data, err = job.result()
    assert code == 0, err
    assert data["watch"] == "superseded by revert", data
    assert "watch ended: revision 2 superseded by revert" in err
    assert [(r["number"], r["kind"], r["status"]) for r in history(project)] == [
        (1, "up", "superseded"), (2, "up", "superseded"), (3, "revert", "deployed")]
    assert running_image(project, "app") == v1
    assert not list(project.state_dir.glob("watch-*.tmp"))


@pytest.mark.docker
def test_watch_with_no_current_revision_is_bad_input(
    project: ComposeProject, images: AppImages
) -> None:
    write_services(project, services(app=service(images.local("healthy"))))
    result = project.run("watch", "--for", "5s", check=2, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no deployed revision to watch" in lines[0], result.stderr
    assert "rollback up" in lines[0]
    assert not project.state_dir.exists() or not list(project.state_dir.iterdir())


@pytest.mark.docker
def test_an_http_probe_failing_during_the_watch_reverts(
    project: ComposeProject, images: AppImages
) -> None:
    port = free_port()
    gate = (f"ports: ['127.0.0.1:{port}:8080']\nx-rollback:\n  gates:\n"
            f"    - http: http://127.0.0.1:{port}/health\n      interval: 500ms\n"
            "      failures: 2")
    v1, v2 = two_releases(project, images, variant="nohealthcheck", extra=gate)
    job = start(project, "up", *FAST, "--watch", "60s", "--json")
    watching(project, job)
    assert running_image(project, "app") == v2
    docker("exec", project.container("app")["Id"], "touch", "/tmp/fail-health")
    code, data, err = job.result()
    assert code == 1, err
    assert (data["outcome"], data["restored"]) == ("rolled_back", 1), data
    assert f"gate http http://127.0.0.1:{port}/health failed" in data["failure"]["reason"]
    assert running_image(project, "app") == v1
    revs = {r["number"]: r for r in history(project)}
    assert revs[2]["status"] == "failed" and "during the watch" in revs[2]["reason"]


@pytest.mark.docker
def test_an_endless_watch_ends_with_0_on_sigterm_and_when_an_up_supersedes_it(
    project: ComposeProject, images: AppImages
) -> None:
    _, v2 = two_releases(project, images)  # compose.yaml names v2; revision 1 runs v1
    job = start(project, "watch", "--json")
    watching(project, job)
    os.kill(job.proc.pid, signal.SIGTERM)  # how systemd stops a unit
    code, data, err = job.result()
    assert (code, data["watch"]) == (0, "interrupted"), err
    assert "watch ended by interrupt; revision 1 stays deployed" in err

    job = start(project, "watch", "--json")
    watching(project, job)
    deployed = project.run("up", *FAST, "--json", check=None, timeout=240)
    assert deployed.returncode == 0, deployed.stderr
    code, data, err = job.result()
    assert (code, data["watch"]) == (0, "superseded by up"), err
    assert {r["number"]: r["status"] for r in history(project)} == \
        {1: "superseded", 2: "deployed"}
    assert running_image(project, "app") == v2


def test_watch_and_no_rollback_together_are_refused(project: ComposeProject) -> None:
    project.write_file("compose.yaml", "services: {app: {image: crt-none:never}}\n")
    result = project.run("up", "--watch", "10s", "--no-rollback", check=2, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--watch: cannot be combined with --no-rollback" in lines[0]
    assert not (project.dir / ".rollback").exists()
