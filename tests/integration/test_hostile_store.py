"""Issue 10, end to end: the revision store is committed and shared (a pull request can change
it), so its files are input and can be hostile. Through the real CLI and engine:

- a path in history.json that leads out of the store, or a revision file that is a link to
  outside, is refused by ``prune`` and ``revert``: one line naming the file and the fix,
  exit 2, nothing changed (files, containers, tags); the other revisions stay usable;
- a retention tag in history.json that is not this project's (a user's ``…:latest``, another
  project's ``rollback-`` tag) is never removed from the engine by ``prune``, nor moved by a
  ``revert``;
- ``lock`` and ``journal.jsonl`` planted as links are refused, by read-only commands too,
  and the file they point to is left as it was;
- committed files get the umask's mode (0644 under 022), like any file git checks out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from robust_helpers import (
    FAST,
    cli,
    cli_json,
    compose_text,
    error_problems,
    snapshot,
    statuses,
    up,
    write_compose,
)

from support.compose_project import ComposeProject
from support.helpers import docker
from support.testimages import AppImages

pytestmark = pytest.mark.docker


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)  # the CLI runs as a child process and inherits it
    try:
        yield
    finally:
        os.umask(old)


def _three_revisions(project: ComposeProject, images: AppImages) -> dict[int, str]:
    """Revisions 1, 2 (superseded; 2 is the last good) and 3 (deployed), each its own image;
    their image ids."""
    ids = {}
    for number in (1, 2, 3):
        ref = f"{project.name}-img:v{number}"
        ids[number] = images.build_fresh("healthy", ref, version=f"v{number}")
        write_compose(project, compose_text(ref))
        assert up(project)["outcome"] == "deployed"
    assert statuses(project) == {1: "superseded", 2: "superseded", 3: "deployed"}
    return ids


def _history(project: ComposeProject) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project.state_dir / "history.json").read_text())
    return data


def _edit(project: ComposeProject, number: int, change: Any) -> None:
    """Hand-edit revision ``number`` of history.json, as a pull request could."""
    data = _history(project)
    for entry in data["revisions"]:
        if entry["number"] == number:
            change(entry)
    (project.state_dir / "history.json").write_text(json.dumps(data, indent=2))


def _refused(project: ComposeProject, *args: str, needles: tuple[str, ...]) -> None:
    """``args`` exits 2 with one line naming ``needles``, and changes nothing at all."""
    before = snapshot(project)
    result = cli(project, *args, check=None)
    assert not error_problems(result, code=2, needles=needles), (args, result.stderr)
    assert not before.differences(snapshot(project), finished_journal_ok=True), args


def test_paths_and_links_out_of_the_store_are_refused(
        project: ComposeProject, images: AppImages) -> None:
    ids = _three_revisions(project, images)
    store = project.state_dir
    original = (store / "history.json").read_bytes()
    victim = project.dir / "victim.txt"  # a file of the user's, beside the compose file
    victim.write_text("keep me\n")
    outside = project.dir / "outside.yaml"  # revision 1's bytes: its checksum matches
    outside.write_bytes((store / "revisions/0001.yaml").read_bytes())

    # prune --keep 1 removes revision 1 only (2 is the last good one, 3 the current).
    for hostile in ("../../victim.txt", str(victim)):
        _edit(project, 1, lambda entry, path=hostile: entry.update(file=path))
        _refused(project, "prune", "--keep", "1",
                 needles=("history.json", "revision 1", "git checkout", "nothing was changed"))
        assert victim.read_text() == "keep me\n"
    _edit(project, 1, lambda entry: entry.update(file=str(outside)))
    _refused(project, "revert", "--to", "1", *FAST, needles=("history.json", "revision 1"))

    # A revision file that is a link out of the store, its bytes matching the checksum.
    (store / "history.json").write_bytes(original)
    (store / "revisions/0001.yaml").unlink()
    (store / "revisions/0001.yaml").symlink_to(outside)
    _refused(project, "revert", "--to", "1", *FAST, needles=("0001.yaml", "symbolic link"))
    _refused(project, "prune", "--keep", "1", needles=("0001.yaml", "symbolic link"))
    _refused(project, "diff", "1", "3", needles=("0001.yaml", "symbolic link"))
    assert outside.exists() and victim.read_text() == "keep me\n"

    # The other revisions stay usable meanwhile; once the file is real again, all of it.
    cli(project, "diff", "2", "3")
    _, back = cli_json(project, "revert", "--to", "2", *FAST)
    assert back["outcome"] == "deployed" and project.container("app")["Image"] == ids[2]
    (store / "revisions/0001.yaml").unlink()
    (store / "revisions/0001.yaml").write_bytes(outside.read_bytes())
    _, pruned = cli_json(project, "prune", "--keep", "1")  # 4 current, 3 the last good
    assert pruned["pruned"] == [1, 2], pruned


def _image(ref: str) -> str | None:
    found = docker("image", "inspect", "--format", "{{.Id}}", ref, check=None)
    return found.stdout.strip() if found.returncode == 0 else None


def test_prune_never_removes_a_tag_that_is_not_this_projects(
        project: ComposeProject, images: AppImages) -> None:
    ids = _three_revisions(project, images)
    own = f"{project.name}-img:rollback-{project.name}-{ids[1].split(':')[1][:12]}"
    assert _image(own) == ids[1]
    # Tags that are not ours, on the engine for real (named so that the project's cleanup
    # removes them after the test): a user's own tag, and another project's retention tag.
    foreign = [f"{project.name}-victim:latest",
               f"{project.name}-img:rollback-crt-other-{ids[1].split(':')[1][:12]}",
               f"{project.name}-img:rollback-{project.name}x-{ids[1].split(':')[1][:12]}"]
    for ref in foreign:
        docker("image", "tag", ids[1], ref)
    original = (project.state_dir / "history.json").read_bytes()
    for ref in foreign:
        _edit(project, 1, lambda entry, tag=ref: entry["pins"]["app"].update(retention=tag))
        _refused(project, "prune", "--keep", "1",
                 needles=("history.json", "revision 1", "retention tag", "nothing was changed"))
        assert all(_image(tag) == ids[1] for tag in foreign), ref
    assert _image(own) == ids[1]

    # The history as the tool wrote it: prune removes revision 1 and only its own tag.
    (project.state_dir / "history.json").write_bytes(original)
    _, pruned = cli_json(project, "prune", "--keep", "1")
    assert pruned["pruned"] == [1], pruned
    assert _image(own) is None
    assert all(_image(tag) == ids[1] for tag in foreign)

    # A revert re-creates the retention tags of its target: never a tag the history made up
    # (here the user's own tag of another image, which it would move).
    victim = f"{project.name}-victim:mine"
    docker("image", "tag", ids[3], victim)
    _edit(project, 2, lambda entry: entry["pins"]["app"].update(retention=victim))
    _, back = cli_json(project, "revert", "--to", "2", *FAST)
    assert back["outcome"] == "deployed", back
    assert project.container("app")["Image"] == ids[2]
    assert _image(victim) == ids[3], "the user's tag was moved"


@pytest.fixture
def precious(project: ComposeProject) -> Iterator[Path]:
    """A file of the user's that a planted link points to; it must stay exactly as it is.
    It holds an unfinished journal, which a command that followed the link would close."""
    path = project.dir / "precious.jsonl"
    path.write_text(json.dumps({"step": "begin", "operation": "up", "revision": 1}) + "\n")
    before = path.read_bytes(), path.stat().st_mtime_ns
    yield path
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before, "a link was followed"


@pytest.mark.usefixtures("umask_022")
def test_lock_and_journal_links_are_refused_even_by_read_only_commands(
        project: ComposeProject, images: AppImages, precious: Path) -> None:
    write_compose(project, compose_text(images.local("healthy")))
    up(project)
    for name in ("revisions/0001.yaml", "current.yaml", "history.json", ".gitignore"):
        mode = (project.state_dir / name).stat().st_mode & 0o777
        assert mode == 0o644, (name, oct(mode))  # the umask's, as git checks files out
    journal, lock = project.state_dir / "journal.jsonl", project.state_dir / "lock"
    journal.unlink()
    journal.symlink_to(precious)
    for args in (("history",), ("status",), ("up", *FAST), ("prune", "--keep", "1")):
        _refused(project, *args, needles=("journal.jsonl", "symbolic link", "rm "))
    journal.unlink()
    journal.write_text("")
    lock.unlink(missing_ok=True)
    lock.symlink_to(precious)
    for args in (("history",), ("up", *FAST), ("pin",)):
        _refused(project, *args, needles=("lock", "symbolic link", "rm "))
    lock.unlink()
    assert statuses(project) == {1: "deployed"}
