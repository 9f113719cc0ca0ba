"""The git side of the revision store (no engine; a real git in a temporary repository):
the commit message, the pathspec-limited commit, the lookups for ``history`` and
``revert --to``, the history table's git columns and the ``x-rollback.git`` setting."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from compose_rollback import render
from compose_rollback.errors import SettingsError, UnknownGitRevision
from compose_rollback.gitstore import (
    GitProblem,
    commit_message,
    commit_store,
    recorded_in,
    revision_of,
)
from compose_rollback.overlay import Header
from compose_rollback.overlay import render as render_overlay
from compose_rollback.pins import Pin
from compose_rollback.revisions import Revision, RevisionStore, checksum
from compose_rollback.settings import load_settings


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No global or system git config of this machine leaks into a test."""
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "EMAIL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    yield


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True)
    return done.stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Ada Tester")
    git(path, "config", "user.email", "ada@example.invalid")
    (path / "compose.yaml").write_text("services: {}\n")
    git(path, "add", "compose.yaml")
    git(path, "commit", "-q", "-m", "initial")
    return path


PIN = Pin("web", "web:1", "sha256:" + "a" * 64, "sha256:" + "a" * 64, local=True,
          retention="web:rollback-p-aaaaaaaaaaaa")


def record(store: RevisionStore, number: int, *, status: str = "deployed",
           message: str = "") -> list[Revision]:
    header = Header(revision=number, created="2026-01-01T00:00:00Z", message=message,
                    user="u", host="h", git="")
    text = render_overlay(project="p", header=header,
                          services={"web": {"image": PIN.image, "pull_policy": "never"}},
                          top_level={}, apply_hint="docker compose up -d")
    revision = Revision(number=number, status="pending", kind="up",
                        created="2026-01-01T00:00:00Z", file=f"revisions/{number:04d}.yaml",
                        sha256=checksum(text), pins={"web": PIN}, message=message)
    store.add(revision, text)
    if status == "deployed":
        return store.promote(number, finished="2026-01-01T00:00:01Z")
    return store.update(number, status=status, reason="web: is unhealthy",
                        restored_to=number - 1)


def snapshot(repo: Path) -> tuple[str, str, str]:
    return (git(repo, "status", "--porcelain", "--untracked-files=all"),
            git(repo, "diff", "--cached"), git(repo, "diff"))


# -- the message ------------------------------------------------------------------------------
def test_the_message_names_project_revision_status_and_message() -> None:
    revision = Revision(number=4, status="deployed", kind="up", created="c", file="f",
                        sha256="s", pins={}, message="release 1.2")
    text = commit_message(project="web", revision=revision)
    assert text.splitlines()[0] == "compose-rollback: web revision 4 deployed — release 1.2"
    assert "Rollback-Project: web\nRollback-Revision: 4\nRollback-Status: deployed" in text


def test_a_failed_revision_names_the_restore_and_the_reason() -> None:
    revision = Revision(number=5, status="failed", kind="up", created="c", file="f",
                        sha256="s", pins={}, reason="web (p-web-1): is unhealthy",
                        restored_to=4)
    lines = commit_message(project="web", revision=revision).splitlines()
    assert lines[0] == "compose-rollback: web revision 5 failed (restored 4)"
    assert "Reason: web (p-web-1): is unhealthy" in lines


# -- the commit -------------------------------------------------------------------------------
def test_only_the_store_is_committed_and_the_users_changes_stay_as_they_were(
        tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    for name in ("staged.txt", "unstaged.txt"):
        (repo / name).write_text("before\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "two files")
    (repo / "staged.txt").write_text("staged change\n")
    git(repo, "add", "staged.txt")
    (repo / "unstaged.txt").write_text("unstaged change\n")
    (repo / "new-staged.txt").write_text("new\n")
    git(repo, "add", "new-staged.txt")
    (repo / "untracked.txt").write_text("untracked\n")
    store = RevisionStore(repo / ".rollback" / "p")
    revisions = record(store, 1, message="v1")
    (store.root / "lock").write_text("machine-local\n")
    (store.root / "journal.jsonl").write_text("{}\n")
    (store.root / "notes.txt").write_text("not the store's own file\n")
    before = snapshot(repo)

    commit = commit_store(directory=repo, store=store.root, revisions=revisions,
                          message="compose-rollback: p revision 1 deployed — v1")

    assert commit == git(repo, "rev-parse", "HEAD").strip()
    files = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(files) == [".rollback/p/.gitignore", ".rollback/p/current.yaml",
                             ".rollback/p/history.json", ".rollback/p/revisions/0001.yaml"]
    assert git(repo, "log", "-1", "--format=%an <%ae>%n%s") == (
        "Ada Tester <ada@example.invalid>\ncompose-rollback: p revision 1 deployed — v1\n")
    after = snapshot(repo)
    # The user's staged, unstaged and untracked changes are exactly as they were; the only
    # difference is the store, now committed (and its notes.txt, never ours to commit).
    store_lines = {"?? .rollback/p/.gitignore", "?? .rollback/p/current.yaml",
                   "?? .rollback/p/history.json", "?? .rollback/p/revisions/0001.yaml",
                   "?? .rollback/p/notes.txt"}
    assert set(before[0].splitlines()) - store_lines == set(after[0].splitlines()) - {
        "?? .rollback/p/notes.txt"}
    assert "?? .rollback/p/notes.txt" in after[0].splitlines()
    assert not any(line.endswith(("lock", "journal.jsonl")) for line in after[0].splitlines())
    assert after[1:] == before[1:]


def test_a_pruned_revision_file_is_committed_as_removed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    store = RevisionStore(repo / ".rollback" / "p")
    record(store, 1)
    revisions = record(store, 2)
    commit_store(directory=repo, store=store.root, revisions=revisions, message="two")
    store.remove({1})
    revisions = record(store, 3)
    three = commit_store(directory=repo, store=store.root, revisions=revisions, message="three")
    # git log sees the new file as a rename of the removed, near-identical one; the
    # lookups must not (--no-renames), or revision 3 would have no commit that recorded it.
    assert recorded_in(directory=repo, store=store.root)[3] == three
    known = {r.number: r for r in store.revisions()}
    assert revision_of("HEAD", directory=repo, store=store.root, known=known) == 3
    assert git(repo, "show", "--no-renames", "--name-status", "--format=", "HEAD").split() == [
        "M", ".rollback/p/current.yaml", "M", ".rollback/p/history.json",
        "D", ".rollback/p/revisions/0001.yaml", "A", ".rollback/p/revisions/0003.yaml"]
    assert git(repo, "status", "--porcelain") == ""


def test_a_store_in_a_subdirectory_of_the_repository(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    store = RevisionStore(repo / "deploy" / "state" / "p")
    revisions = record(store, 1)
    commit_store(directory=repo / "deploy", store=store.root, revisions=revisions, message="m")
    assert "deploy/state/p/revisions/0001.yaml" in git(repo, "show", "--name-only", "HEAD")
    assert recorded_in(directory=repo / "deploy", store=store.root) == {
        1: git(repo, "rev-parse", "HEAD").strip()}


def test_the_first_commit_of_an_empty_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "A")
    git(repo, "config", "user.email", "a@example.invalid")
    store = RevisionStore(repo / ".rollback" / "p")
    revisions = record(store, 1)
    assert commit_store(directory=repo, store=store.root, revisions=revisions, message="m")
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("case", ["not-a-repo", "outside", "hook", "identity"])
def test_what_git_refuses_is_a_one_line_problem_and_nothing_moves(
        tmp_path: Path, case: str) -> None:
    repo = make_repo(tmp_path / "repo")
    directory, store = repo, RevisionStore(repo / ".rollback" / "p")
    if case == "not-a-repo":
        directory = tmp_path / "plain"
        store = RevisionStore(directory / ".rollback" / "p")
    elif case == "outside":
        store = RevisionStore(tmp_path / "elsewhere" / "p")
    elif case == "hook":
        hook = repo / ".git" / "hooks" / "pre-commit"
        hook.write_text("#!/bin/sh\necho 'rejected by policy' >&2\nexit 1\n")
        hook.chmod(0o755)
    else:
        git(repo, "config", "--unset", "user.email")
        git(repo, "config", "user.useConfigOnly", "true")
    revisions = record(store, 1)
    head, before = git(repo, "rev-parse", "HEAD"), snapshot(repo)
    with pytest.raises(GitProblem) as caught:
        commit_store(directory=directory, store=store.root, revisions=revisions, message="m")
    line = caught.value.one_line()
    assert "\n" not in line
    expected = {"not-a-repo": "is not in a git repository", "outside": "outside the git work "
                "tree", "hook": "rejected by policy", "identity": "git config user.email"}
    assert expected[case] in line, line
    assert (git(repo, "rev-parse", "HEAD"), snapshot(repo)) == (head, before)


def test_git_missing_is_a_problem_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo")
    store = RevisionStore(repo / ".rollback" / "p")
    revisions = record(store, 1)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    with pytest.raises(GitProblem, match="git is not installed"):
        commit_store(directory=repo, store=store.root, revisions=revisions, message="m")


# -- finding the commits ----------------------------------------------------------------------
def test_the_commit_that_recorded_a_revision_and_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    store = RevisionStore(repo / ".rollback" / "p")
    initial = git(repo, "rev-parse", "HEAD").strip()
    ids = {}
    for number in (1, 2, 3):
        revisions = record(store, number)
        ids[number] = commit_store(directory=repo, store=store.root, revisions=revisions,
                                   message=f"r{number}")
    git(repo, "tag", "release-1", str(ids[1]))
    assert recorded_in(directory=repo, store=store.root) == ids
    known = {r.number: r for r in store.revisions()}

    def of(ref: str) -> int:
        return revision_of(ref, directory=repo, store=store.root, known=known)

    assert (of("HEAD"), of("HEAD~1"), of("release-1"), of(str(ids[2])[:10])) == (3, 2, 1, 2)
    for ref, problem in (("nope", "unknown or ambiguous"), (initial, "recorded no revision"),
                         ("--all", "neither a revision number")):
        with pytest.raises(UnknownGitRevision) as caught:
            of(ref)
        assert problem in caught.value.one_line()
        assert "docker compose rollback history" in caught.value.one_line()


def test_a_rebased_history_still_finds_the_commits(tmp_path: Path) -> None:
    """The lookup, not a stored id: after a rebase the commits have new ids, and history and
    ``revert --to`` follow them."""
    repo = make_repo(tmp_path / "repo")
    store = RevisionStore(repo / ".rollback" / "p")
    git(repo, "checkout", "-q", "-b", "deploys")
    revisions = record(store, 1)
    old = commit_store(directory=repo, store=store.root, revisions=revisions, message="r1")
    git(repo, "checkout", "-q", "main")
    (repo / "other.txt").write_text("x\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-q", "-m", "meanwhile")
    git(repo, "checkout", "-q", "deploys")
    git(repo, "rebase", "-q", "main")
    new = git(repo, "rev-parse", "HEAD").strip()
    assert new != old
    assert recorded_in(directory=repo, store=store.root) == {1: new}


def test_outside_git_there_is_nothing_recorded(tmp_path: Path) -> None:
    assert recorded_in(directory=tmp_path, store=tmp_path / ".rollback" / "p") == {}


# -- the history table and the setting --------------------------------------------------------
def test_history_shows_git_columns_only_with_git() -> None:
    plain = Revision(number=1, status="deployed", kind="up", created="c", file="f",
                     sha256="s", pins={"web": PIN}, message="v1")
    assert "FROM" not in render.history([plain])
    made = replace(plain, git="0123456789ab (compose files modified)")
    text = render.history([made, replace(made, number=2, git="ba9876543210")],
                          recorded={2: "f" * 40})
    header, one, two = text.splitlines()
    assert header.split()[4:6] == ["FROM", "RECORDED"]
    assert one.split()[4:6] == ["0123456789ab+", "-"]
    assert two.split()[4:6] == ["ba9876543210", "f" * 12]


@pytest.mark.parametrize(("value", "expected"), [("commit", "commit"), ("off", "off"),
                                                 (False, "off")])
def test_the_git_setting(value: object, expected: str) -> None:
    assert load_settings({"x-rollback": {"git": value}}).git == expected


@pytest.mark.parametrize("value", ["yes", True, "push", 1])
def test_a_bad_git_setting_names_its_path(value: object) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"x-rollback": {"git": value}})
    assert caught.value.path == "x-rollback.git"
    assert "expected commit or off" in caught.value.one_line()


def test_the_default_is_off() -> None:
    assert load_settings({}).git == "off"


def test_history_outside_git_starts_no_git_process(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """``history`` asks git for recording commits only where git could find a repository."""
    from compose_rollback import gitstore

    project = tmp_path / "deep" / "project"
    project.mkdir(parents=True)
    monkeypatch.delenv("GIT_DIR", raising=False)
    calls: list[object] = []
    import subprocess

    monkeypatch.setattr(subprocess, "run",
                        lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(OSError()))
    assert not gitstore.might_be_in_git(project)
    assert gitstore.recorded_in(directory=project, store=project / ".rollback" / "p") == {}
    assert calls == []
    (tmp_path / ".git").mkdir()  # a repository above the project: git decides
    assert gitstore.might_be_in_git(project)
    (tmp_path / ".git").rmdir()
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    assert gitstore.might_be_in_git(project)
