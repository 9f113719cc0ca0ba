"""Issue 13, git: ``up/revert --commit`` and ``x-rollback.git: commit`` commit the revision
store once a revision is decided, and nothing else; ``history`` shows the commits; ``revert
--to`` takes a git revision. Real git in the test project's own repository, real engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from core_helpers import FAST, cli, cli_json, history, running_image, service, services

from support.compose_project import REPO_ROOT, ComposeProject
from support.testimages import AppImages

X_FAST = "x-rollback: {timeout: 60s, min_healthy: 200ms}\n"
X_COMMIT = "x-rollback: {timeout: 60s, min_healthy: 200ms, git: commit}\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env=_git_env(repo.parent))
    return done.stdout


def _git_env(home: Path) -> dict[str, str]:
    """This machine's global and system git config kept out: only the repo's config counts."""
    config = home / "empty.gitconfig"
    if not config.exists():
        config.write_text("")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_")) and k != "EMAIL"}
    return {**env, "GIT_CONFIG_GLOBAL": str(config), "GIT_CONFIG_NOSYSTEM": "1"}


def make_repo(project: ComposeProject, compose: str, *, where: Path | None = None) -> Path:
    """The project's directory (or ``where``, above it) as a git repository with the
    compose file committed and an identity in its own config."""
    repo = where or project.dir
    project.write_file("compose.yaml", compose)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Ada Tester")
    git(repo, "config", "user.email", "ada@example.invalid")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "compose file")
    return repo


def run(project: ComposeProject, *args: str, check: int,
        env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], Any]:
    return cli_json(project, *args, check=check, env={**_git_env(project.dir.parent),
                                                      **(env or {})})


def snapshot(repo: Path) -> tuple[str, str, str]:
    return (git(repo, "status", "--porcelain", "--untracked-files=all"),
            git(repo, "diff", "--cached"), git(repo, "diff"))


def user_changes(repo: Path) -> None:
    """A staged change, an unstaged one, a staged new file and an untracked one."""
    for name in ("staged.txt", "unstaged.txt"):
        (repo / name).write_text("before\n")
    git(repo, "add", "staged.txt", "unstaged.txt")
    git(repo, "commit", "-q", "-m", "two files")
    (repo / "staged.txt").write_text("staged change\n")
    (repo / "new.txt").write_text("new\n")
    git(repo, "add", "staged.txt", "new.txt")
    (repo / "unstaged.txt").write_text("unstaged change\n")
    (repo / "untracked.txt").write_text("untracked\n")


def store_lines(status: str) -> set[str]:
    return {line for line in status.splitlines() if ".rollback/" not in line}


@pytest.mark.docker
def test_commit_records_each_decision_and_touches_nothing_else(
        project: ComposeProject, images: AppImages) -> None:
    good = services(web=service(images.local("healthy")))
    repo = make_repo(project, X_FAST + "services:\n" + _indent(good))
    user_changes(repo)
    source = git(repo, "rev-parse", "--short=12", "HEAD").strip()
    before = snapshot(repo)

    _, result = run(project, "up", *FAST, "-m", "release 1", "--commit", check=0)

    head = git(repo, "rev-parse", "HEAD").strip()
    assert result["commit"] == head, result
    assert git(repo, "log", "-1", "--format=%an <%ae>|%s") == (
        f"Ada Tester <ada@example.invalid>|compose-rollback: {project.name} revision 1 "
        "deployed — release 1\n")
    store = f".rollback/{project.name}"
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        f"{store}/.gitignore", f"{store}/current.yaml", f"{store}/history.json",
        f"{store}/revisions/0001.yaml"]
    after = snapshot(repo)
    assert after[1:] == before[1:]  # the index and the unstaged diff: exactly as they were
    assert store_lines(after[0]) == store_lines(before[0])
    assert not [line for line in after[0].splitlines() if ".rollback/" in line]  # lock, journal
    assert (project.dir / store / "lock").exists()  # there, git-ignored, never committed

    # The setting alone: a broken release is committed as failed, with what was restored.
    broken = services(web=service(images.local("unhealthy")))
    project.write_file("compose.yaml", X_COMMIT + "services:\n" + _indent(broken))
    _, failed = run(project, "up", *FAST, "-m", "release 2", check=1)
    assert git(repo, "log", "-1", "--format=%s") == (
        f"compose-rollback: {project.name} revision 2 failed (restored 1) — release 2\n")
    assert "Reason: web" in git(repo, "log", "-1", "--format=%b")
    assert failed["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert running_image(project, "web") == images.id("healthy")

    revs = {r["number"]: r for r in history(project)}
    assert revs[1]["git"] == source
    # made from the commit that recorded revision 1, with compose.yaml changed since
    assert revs[2]["git"] == f"{head[:12]} (compose files modified)"
    assert (revs[1]["recorded_in"], revs[2]["recorded_in"]) == (head, failed["commit"])
    text = cli(project, "history").stdout.splitlines()
    assert text[0].split()[4:6] == ["FROM", "RECORDED"]
    assert text[1].split()[4:6] == [source, head[:12]]

    # --no-commit wins over the setting.
    git(repo, "tag", "first-release", head)
    count = git(repo, "rev-list", "--count", "HEAD")
    _, reverted = run(project, "revert", "--to", "first-release", *FAST, "--no-commit",
                      check=0)
    assert reverted["commit"] is None
    assert git(repo, "rev-list", "--count", "HEAD") == count
    assert history(project)[-1]["restores"] == 1


@pytest.mark.docker
def test_revert_to_a_git_revision(project: ComposeProject, images: AppImages) -> None:
    repo = make_repo(project, X_COMMIT + "services:\n" + _indent(
        services(web=service(images.local("healthy")))))
    initial = git(repo, "rev-parse", "HEAD").strip()
    run(project, "up", *FAST, "-m", "one", check=0)
    project.write_file("compose.yaml", X_COMMIT + "services:\n" + _indent(
        services(web=service(images.local("nohealthcheck")))))
    run(project, "up", *FAST, "-m", "two", check=0)
    assert running_image(project, "web") == images.id("nohealthcheck")

    _, result = run(project, "revert", "--to", "HEAD~1", *FAST, check=0)
    assert (result["outcome"], result["revision"]) == ("deployed", 3)
    assert history(project)[-1]["restores"] == 1
    assert running_image(project, "web") == images.id("healthy")
    assert git(repo, "log", "-1", "--format=%s") == (
        f"compose-rollback: {project.name} revision 3 deployed — revert to revision 1\n")

    statuses = [r["status"] for r in history(project)]
    for ref, problem in (("no-such-tag", "unknown or ambiguous"),
                         (initial, "recorded no revision")):
        done = cli(project, "revert", "--to", ref, *FAST, check=2,
                   env=_git_env(project.dir.parent))
        [line] = done.stderr.strip().splitlines()
        assert ref[:12] in line and problem in line, line
        assert "docker compose rollback history" in line
    assert [r["status"] for r in history(project)] == statuses  # nothing changed


@pytest.mark.docker
def test_a_store_in_a_subdirectory_with_its_own_dir_setting(
        project: ComposeProject, images: AppImages) -> None:
    """The repository is above the project directory, and x-rollback.dir moves the store."""
    repo = make_repo(project, "# the repository's top; the project is in deploy/\n")
    sub = repo / "deploy"
    sub.mkdir()
    (sub / "compose.yaml").write_text(
        "x-rollback: {timeout: 60s, min_healthy: 200ms, git: commit, dir: state}\n"
        f"name: {project.name}\nservices:\n"
        + _indent(services(web=service(images.local("healthy")))))
    git(repo, "add", "deploy/compose.yaml")
    git(repo, "commit", "-q", "-m", "the project in a subdirectory")
    done = subprocess.run(  # from the subdirectory, as a user there would run it
        [sys.executable, "-m", "compose_rollback", "up", *FAST, "--json"], cwd=sub,
        capture_output=True, text=True, timeout=240, check=False,
        env={**_git_env(repo.parent), "PYTHONPATH": _pythonpath()})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert sorted(git(repo, "show", "--name-only", "--format=", "HEAD").split()) == [
        f"deploy/state/{project.name}/{name}" for name in
        (".gitignore", "current.yaml", "history.json", "revisions/0001.yaml")]
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.docker
@pytest.mark.parametrize("case", ["not-a-repo", "hook", "identity", "outside", "no-git"])
def test_when_git_cannot_commit_it_is_a_warning_and_the_exit_code_stands(
        project: ComposeProject, images: AppImages, tmp_path: Path, case: str) -> None:
    compose = X_FAST + "services:\n" + _indent(services(web=service(images.local("healthy"))))
    env: dict[str, str] = {}
    if case == "not-a-repo":
        project.write_file("compose.yaml", compose)
        repo = None
    else:
        repo = make_repo(project, compose)
    if case == "hook":
        assert repo is not None
        hook = repo / ".git" / "hooks" / "pre-commit"
        hook.write_text("#!/bin/sh\necho 'rejected by policy' >&2\nexit 1\n")
        hook.chmod(0o755)
    elif case == "identity":
        assert repo is not None
        git(repo, "config", "--unset", "user.email")
        git(repo, "config", "user.useConfigOnly", "true")
    elif case == "outside":
        env["COMPOSE_ROLLBACK_DIR"] = str(tmp_path / "state-elsewhere")
    elif case == "no-git":
        bin_dir = tmp_path / "bin-without-git"
        bin_dir.mkdir()
        docker = shutil.which("docker")
        assert docker is not None
        (bin_dir / "docker").symlink_to(docker)
        env["PATH"] = str(bin_dir)
    before = (git(repo, "rev-parse", "HEAD"), snapshot(repo)) if repo else None

    done, result = run(project, "up", *FAST, "--commit", check=0, env=env)

    assert result["outcome"] == "deployed" and result["commit"] is None
    warnings = [line for line in done.stderr.splitlines() if "not committed to git" in line]
    assert len(warnings) == 1, done.stderr
    expected = {"not-a-repo": "is not in a git repository", "hook": "rejected by policy",
                "identity": "git config user.email", "outside": "outside the git work tree",
                "no-git": "git is not installed"}
    assert expected[case] in warnings[0], warnings[0]
    if repo is not None and before is not None:  # HEAD, the index, the user's diff: unmoved
        after = (git(repo, "rev-parse", "HEAD"), snapshot(repo))
        assert (after[0], after[1][1:]) == (before[0], before[1][1:])
        assert store_lines(after[1][0]) == store_lines(before[1][0])


@pytest.mark.docker
def test_a_failed_deploy_keeps_exit_1_when_the_commit_is_rejected(
        project: ComposeProject, images: AppImages) -> None:
    repo = make_repo(project, X_COMMIT + "services:\n" + _indent(
        services(web=service(images.local("healthy")))))
    run(project, "up", *FAST, check=0)
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'frozen branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    project.write_file("compose.yaml", X_COMMIT + "services:\n" + _indent(
        services(web=service(images.local("unhealthy")))))
    done, result = run(project, "up", *FAST, check=1)
    assert result["outcome"] == "rolled_back"
    assert "frozen branch" in done.stderr and "revision 2 was not committed" in done.stderr


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())


def _pythonpath() -> str:
    return os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
