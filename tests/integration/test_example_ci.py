"""``examples/ci/deploy.sh`` end to end, stage by stage as the example pipelines call it: in a
git repository made from a copy of the example, against the real engine and the loopback
registry. A good build deploys (exit 0, a commit recording the revision, rollback.json); a
build whose health check fails is rolled back (exit 1, the good release still running, a
commit recording the failed revision)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.compose_project import REPO_ROOT, ComposeProject
from support.examples import EXAMPLES_DIR
from support.helpers import free_port, http_get, run_command, wait_for
from support.registry import Registry
from support.testimages import AppImages

STAGES = ("build", "test", "push", "deploy")


def _git(repo: Path, *args: str, env: dict[str, str]) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env=env).stdout


def _copy_example(project: ComposeProject) -> Path:
    """The example as the root of a new repository, named after the test project (so its
    containers and its image repository are the project's, removed by its clean-up)."""
    shutil.copytree(EXAMPLES_DIR / "ci", project.dir, dirs_exist_ok=True)
    compose = project.dir / "compose.yaml"
    compose.write_text(re.sub(r"(?m)^name: .*$", f"name: {project.name}", compose.read_text()))
    return project.dir


def _stage(repo: Path, stage: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_command([str(repo / "deploy.sh"), stage], cwd=repo, env=env, check=None,
                       timeout=300)


def _pipeline(repo: Path, env: dict[str, str]) -> int:
    """The stages in order, each stopping the run when it fails (as every runner does)."""
    for stage in STAGES:
        done = _stage(repo, stage, env)
        if done.returncode != 0:
            assert stage == "deploy", f"{stage} failed:\n{done.stdout}\n{done.stderr}"
            return done.returncode
    return 0


@pytest.mark.docker
def test_the_ci_script_deploys_a_good_build_and_rolls_back_a_broken_one(
        project: ComposeProject, registry: Registry, images: AppImages,
        tmp_path: Path) -> None:
    repo = _copy_example(project)
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMPOSE_", "GIT_")) and k != "EMAIL"}
    env.update({
        "GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1",
        "REGISTRY": registry.host, "APP_REPO": f"{project.name}-web",
        "ROLLBACK_CMD": f"{sys.executable} -m compose_rollback",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                    os.environ.get("PYTHONPATH")])),
        "CI_EXAMPLE_PORT": str(port), "BUSYBOX": str(images.busybox)})
    _git(repo, "init", "-q", "-b", "main", env=env)
    _git(repo, "config", "user.name", "CI Runner", env=env)
    _git(repo, "config", "user.email", "ci@example.invalid", env=env)
    _git(repo, "add", "-A", env=env)
    _git(repo, "commit", "-q", "-m", "the app", env=env)
    good = _git(repo, "rev-parse", "HEAD", env=env).strip()

    assert _pipeline(repo, {**env, "GIT_COMMIT": good}) == 0
    result = json.loads((repo / "rollback.json").read_text())
    assert (result["outcome"], result["exit_code"], result["revision"]) == ("deployed", 0, 1)
    recorded = _git(repo, "rev-parse", "HEAD", env=env).strip()
    assert result["commit"] == recorded != good
    assert _git(repo, "log", "-1", "--format=%an|%s", env=env) == (
        f"CI Runner|compose-rollback: {project.name} revision 1 deployed — {good}\n")
    image = f"{registry.host}/{project.name}-web"
    pinned = json.loads((repo / ".rollback" / project.name / "history.json").read_text())
    assert pinned["revisions"][0]["pins"]["web"]["image"].startswith(
        f"{image}:{good[:12]}@sha256:")  # the registry digest of what was pushed
    running = project.container("web")["Image"]
    page = f"http://127.0.0.1:{port}/"
    wait_for(lambda: http_get(page).body == f"hello from {good[:12]}\n", 10, what="v1 page")
    assert _git(repo, "status", "--porcelain", env=env) == ""  # rollback.json is ignored

    # A release whose health check fails: the tests pass, the deploy's gate catches it.
    health = repo / "app" / "www" / "cgi-bin" / "health"
    health.write_text("#!/bin/sh\nprintf 'Status: 500 Internal Server Error\\r\\n\\r\\n'\n"
                      "echo 'cannot open the database'\n")
    _git(repo, "commit", "-q", "-am", "a broken health check", env=env)
    broken = _git(repo, "rev-parse", "HEAD", env=env).strip()

    assert _pipeline(repo, {**env, "GIT_COMMIT": broken}) == 1
    result = json.loads((repo / "rollback.json").read_text())
    assert (result["outcome"], result["exit_code"], result["revision"],
            result["restored"]) == ("rolled_back", 1, 2, 1), result
    assert project.container("web")["Image"] == running  # the good release, same image
    assert http_get(page).body == f"hello from {good[:12]}\n"
    assert result["commit"] == _git(repo, "rev-parse", "HEAD", env=env).strip()
    assert _git(repo, "log", "-1", "--format=%s", env=env) == (
        f"compose-rollback: {project.name} revision 2 failed (restored 1) — {broken}\n")
    assert _git(repo, "show", "--name-only", "--format=", "HEAD", env=env).split() == [
        f".rollback/{project.name}/history.json",
        f".rollback/{project.name}/revisions/0002.yaml"]


@pytest.mark.docker
def test_the_lock_held_is_exit_4_for_the_pipeline(project: ComposeProject,
                                                 registry: Registry) -> None:
    """deploy.sh passes the tool's exit code on: a held lock is 4 (GitLab retries on it)."""
    repo = _copy_example(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update({"REGISTRY": registry.host, "GIT_COMMIT": "0" * 40,
                "ROLLBACK_CMD": f"{sys.executable} -m compose_rollback",
                "PYTHONPATH": str(REPO_ROOT)})
    store = repo / ".rollback" / project.name
    store.mkdir(parents=True)
    holder = subprocess.Popen(  # holds the project's lock until told to stop
        [sys.executable, "-c", "import sys; from pathlib import Path; "
         "from compose_rollback.lock import project_lock; "
         "cm = project_lock(Path(sys.argv[1]), command='up', wait=0.0, notice=print); "
         "cm.__enter__(); print('held', flush=True); sys.stdin.readline()", str(store)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        done = _stage(repo, "deploy", env)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    assert done.returncode == 4, done.stderr
    assert "another deploy holds the lock" in done.stderr
