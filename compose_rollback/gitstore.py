"""The project's git repository: the only module that runs git.

Three jobs: the commit the compose files were at (a revision's ``git`` header), committing
the revision store after a decision (``x-rollback.git: commit``, ``--commit``), and finding
the commits that recorded revisions (``history``, ``revert --to <git ref>``).

The commit is made from a temporary index that starts at ``HEAD`` and gets only the store's
own files, so the user's staged and unstaged changes elsewhere stay exactly as they were; the
real index is then brought up to date for those files alone (``git reset -- <files>``).

Which commit recorded a revision is looked up in git each time (the newest commit that added
``revisions/<n>.yaml``), not written into history.json: the id cannot be inside the commit it
names, and a rebase, a cherry-pick or a fresh clone changes ids while the lookup still finds
the commit that holds the file now.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from compose_rollback.errors import RollbackError, UnknownGitRevision
from compose_rollback.revisions import Revision, RevisionStore, revision_file

if TYPE_CHECKING:
    import subprocess

    from compose_rollback.project import Project

TIMEOUT = 120.0  # hooks may run a linter; a prompt can never come (GIT_TERMINAL_PROMPT=0)
_FIXED_FILES = (".gitignore", "history.json", "current.yaml")
_REVISION_NAME = re.compile(r"^(\d{4,})\.yaml$")


class GitProblem(Exception):
    """git could not do what was asked; ``problem`` is one line for a warning."""

    def __init__(self, problem: str, *, fix: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.problem}; {self.fix}" if self.fix else self.problem


def _run(cwd: Path, *args: str, index: Path | None = None,
         timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    import subprocess  # (not for `history` outside git, which runs no git)

    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    try:
        return subprocess.run(["git", "--literal-pathspecs", "-C", str(cwd), *args],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              env=env, stdin=subprocess.DEVNULL)
    except FileNotFoundError as error:
        raise GitProblem("git is not installed", fix="install git or leave --commit off"
                         ) from error
    except OSError as error:
        raise GitProblem(f"git could not be run: {error.strerror or error}") from error
    except subprocess.TimeoutExpired as error:
        raise GitProblem(f"git {args[0]} did not finish within {timeout:.0f}s") from error


def _checked(cwd: Path, *args: str, index: Path | None = None) -> str:
    done = _run(cwd, *args, index=index)
    if done.returncode != 0:
        raise GitProblem(f"git {args[0]} failed: {_last_line(done.stderr or done.stdout)}")
    return done.stdout


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # git prints the cause last ("fatal: …"); a hook may print anything, its last line counts.
    return " ".join(lines[-1].split())[:200] if lines else "no output"


@dataclass(frozen=True)
class Repository:
    """The work tree the project directory is in, and the store's path inside it."""

    top: Path
    store: str  # relative to ``top``, with forward slashes

    @classmethod
    def of(cls, *, directory: Path, store: Path) -> Repository:
        done = _run(directory, "rev-parse", "--show-toplevel", timeout=10)
        if done.returncode != 0:
            raise GitProblem(f"{directory} is not in a git repository",
                             fix="run `git init` there, or leave --commit off")
        top = Path(done.stdout.strip()).resolve()
        try:
            inside = store.resolve().relative_to(top)
        except ValueError:
            raise GitProblem(f"the revision store {store} is outside the git work tree {top}",
                             fix="set x-rollback.dir to a directory inside the repository"
                             ) from None
        return cls(top=top, store=inside.as_posix())

    def path(self, name: str) -> str:
        return name if self.store in ("", ".") else f"{self.store}/{name}"


# -- the commit the compose files were at -----------------------------------------------------
def source_commit(*, directory: Path, files: Sequence[Path]) -> str:
    """``HEAD`` (12 hex digits), with `` (compose files modified)`` when they differ from it;
    empty outside a git repository."""
    try:
        head = _run(directory, "rev-parse", "--short=12", "HEAD", timeout=5)
        if head.returncode != 0:
            return ""
        dirty = _run(directory, "status", "--porcelain", "--", *map(str, files), timeout=5)
    except GitProblem:
        return ""
    suffix = " (compose files modified)" if dirty.stdout.strip() else ""
    return head.stdout.strip() + suffix


# -- committing the store ---------------------------------------------------------------------
def commit_message(*, project: str, revision: Revision) -> str:
    """``compose-rollback: web revision 4 deployed — <message>``, then the reason (already
    masked in the history) and trailers that name the project and revision."""
    status = revision.status
    if revision.restored_to is not None:
        status += f" (restored {revision.restored_to})"
    subject = f"compose-rollback: {project} revision {revision.number} {status}"
    if revision.message:
        subject += f" — {revision.message}"
    body = []
    if revision.restores is not None:
        body.append(f"Restores revision {revision.restores}.")
    if revision.reason:
        body.append(f"Reason: {' '.join(revision.reason.split())[:500]}")
    trailers = [f"Rollback-Project: {project}", f"Rollback-Revision: {revision.number}",
                f"Rollback-Status: {revision.status}"]
    return "\n\n".join([subject, *(["\n".join(body)] if body else []), "\n".join(trailers)])


def commit_store(*, directory: Path, store: Path, revisions: Sequence[Revision],
                 message: str) -> str | None:
    """Commit the store's own files (history, current overlay, ``.gitignore``, the revision
    files) and nothing else; the new commit's id, or None when there was nothing new."""
    repo = Repository.of(directory=directory, store=store)
    import tempfile  # (not for `history`, which only reads git)

    with tempfile.TemporaryDirectory(prefix="compose-rollback-git-") as tmp:
        index = Path(tmp) / "index"
        has_head = _run(repo.top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}",
                        timeout=10).returncode == 0
        _checked(repo.top, "read-tree", *(["HEAD"] if has_head else ["--empty"]), index=index)
        paths = _store_paths(repo, store=store, revisions=revisions, index=index)
        if not paths:
            return None
        _checked(repo.top, "add", "--all", "--", *paths, index=index)
        changed = _run(repo.top, "diff", "--cached", "--quiet",
                       *(["HEAD"] if has_head else []), "--", *paths, index=index)
        if has_head and changed.returncode == 0:
            return None
        done = _run(repo.top, "commit", "--quiet", "--no-edit", "-m", message, index=index)
        if done.returncode != 0:
            raise GitProblem(f"git commit failed: {_last_line(done.stderr + done.stdout)}",
                             fix=_commit_fix(done.stderr + done.stdout))
    commit = _checked(repo.top, "rev-parse", "HEAD").strip()
    # The real index still has the old entries for these files: bring them to the commit, so
    # `git status` shows them clean (and nothing else in the index moves).
    _run(repo.top, "reset", "--quiet", "HEAD", "--", *paths)
    return commit


def _commit_fix(output: str) -> str:
    if "Please tell me who you are" in output or "user.email" in output:
        return "set an identity: git config user.name NAME; git config user.email ADDRESS"
    return "the revision is recorded in the store; commit it by hand once git accepts it"


def _store_paths(repo: Repository, *, store: Path, revisions: Sequence[Revision],
                 index: Path) -> list[str]:
    """The store's files to commit, relative to the work tree's top: those that exist, and
    the tracked revision files that were removed (``prune``). Never a file the store does
    not make."""
    wanted = [*_FIXED_FILES, *(revision_file(r.number) for r in revisions)]
    listed = _checked(repo.top, "ls-files", "-z", "--", repo.path("revisions"), index=index)
    tracked = {name for name in listed.split("\0") if name}
    wanted += [f"revisions/{n:04d}.yaml" for n in _numbers(sorted(tracked),
                                                          prefix=repo.path("revisions/"))]
    return [repo.path(n) for n in dict.fromkeys(wanted)
            if (store / n).is_file() or repo.path(n) in tracked]


# -- the commits that recorded revisions ------------------------------------------------------
def recorded_in(*, directory: Path, store: Path) -> dict[int, str]:
    """Revision number -> the newest commit that added its file; empty outside git."""
    if not might_be_in_git(directory):
        return {}  # no git process for `history` in a project outside git
    try:
        repo = Repository.of(directory=directory, store=store)
        # --no-renames: a revision file added as another one is pruned is an addition, not
        # a rename (git log detects renames by default; the files are near-identical).
        done = _run(repo.top, "log", "--no-renames", "--diff-filter=A", "--format=%x00%H",
                    "--name-only",
                    "--", repo.path("revisions"), timeout=30)
    except GitProblem:
        return {}
    if done.returncode != 0:  # e.g. an unborn branch: nothing recorded yet
        return {}
    return _parse_log(done.stdout, prefix=repo.path("revisions/"))


def might_be_in_git(directory: Path) -> bool:
    """False only when git could not find a repository either: no ``.git`` in the directory
    or above it, and no ``GIT_DIR`` (git itself decides the rest: ceilings, safe.directory)."""
    if os.environ.get("GIT_DIR"):
        return True
    here = Path(directory).resolve()  # git looks from the physical directory
    return any(os.path.lexists(folder / ".git") for folder in (here, *here.parents))


def _parse_log(output: str, *, prefix: str) -> dict[int, str]:
    found: dict[int, str] = {}
    for chunk in output.split("\0")[1:]:
        lines = chunk.strip().splitlines()
        if not lines:
            continue
        for number in _numbers(lines[1:], prefix=prefix):
            found.setdefault(number, lines[0].strip())  # newest first: the first one wins
    return found


def _numbers(names: Sequence[str], *, prefix: str) -> list[int]:
    out = []
    for name in names:
        match = _REVISION_NAME.match(name[len(prefix):]) if name.startswith(prefix) else None
        if match:
            out.append(int(match.group(1)))
    return out


def revision_of(ref: str, *, directory: Path, store: Path,
                known: Mapping[int, Revision]) -> int:
    """The revision a git revision (``HEAD~3``, a commit id, a tag) recorded: the newest
    revision file that commit added to this store. ``UnknownGitRevision`` otherwise."""
    if not ref.strip() or ref.startswith("-"):
        raise UnknownGitRevision(ref, "is neither a revision number nor a git revision")
    try:
        repo = Repository.of(directory=directory, store=store)
        done = _run(repo.top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}",
                    timeout=10)
        if done.returncode != 0:
            raise UnknownGitRevision(ref, "is neither a revision number nor a commit of this "
                                     "repository (unknown or ambiguous)")
        commit = done.stdout.strip()
        added = _checked(repo.top, "diff-tree", "--no-renames", "--root", "--no-commit-id", "-r",
                         "--name-only", "--diff-filter=A", commit, "--", repo.path("revisions"))
    except GitProblem as error:
        raise UnknownGitRevision(ref, "is neither a revision number nor a git revision "
                                 f"({error.problem})") from error
    numbers = [n for n in _numbers(added.splitlines(), prefix=repo.path("revisions/"))
               if n in known]
    if not numbers:
        raise UnknownGitRevision(ref, f"is commit {commit[:12]}, which recorded no revision "
                                 "of this project")
    return max(numbers)


def commit_decision(*, project: Project, store: RevisionStore, number: int,
                    progress: Callable[[str], None]) -> str | None:
    """After revision ``number`` was decided: commit the store, or say on one line why not
    (never an error: the deploy's outcome stands whatever git does)."""
    try:
        revisions = store.revisions()
        revision = store.get(number, revisions)
        return commit_store(directory=project.directory, store=store.root,
                            revisions=revisions,
                            message=commit_message(project=project.name, revision=revision))
    except (GitProblem, RollbackError) as error:
        why = error.one_line()
    except OSError as error:
        why = error.strerror or str(error)
    progress(f"warning: revision {number} was not committed to git: {why}")
    return None

