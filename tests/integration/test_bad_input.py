"""Issue 5: the bad-input table.

Every row gives a bad input to the CLI against the real engine and checks four things: the
exit code is the named one of the behaviour contract, stderr is exactly one line that names the
problem, no traceback reaches the user, and *nothing changed*: every file under the project
directory (``.rollback/`` included, paths and bytes; only the journal may have gained a
*finished* operation, see ``JOURNAL_MAY_RECORD_A_FINISHED_OPERATION``) and every container of
the project (id, state, image, health) is the same before and after, and so are the retention
tags.

Rows start from one of three bases: ``fresh`` (a compose file, nothing deployed), ``one`` (one
good revision deployed and running) or ``two`` (two good revisions, the second current). The
snapshot is taken after the base and the row's own preparation, right before the command.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from robust_helpers import (
    FAST,
    Snapshot,
    compose_text,
    error_problems,
    publish,
    run_cli,
    snapshot,
    table,
    up,
    write_compose,
)

from compose_rollback.errors import ExitCode
from support.compose_project import ComposeProject
from support.helpers import describe, docker
from support.registry import Registry
from support.testimages import AppImages

pytestmark = pytest.mark.docker

#: The journal (machine-local, git-ignored) records each step *before* it is taken, so an
#: operation refused half-way (a read-only or full store) may leave ``begin ... end`` in it.
#: That is no change for the user; set this to False to demand byte-identical journals too.
JOURNAL_MAY_RECORD_A_FINISHED_OPERATION = True

NO_ENGINE = {"DOCKER_HOST": "unix:///tmp/nonexistent-crt.sock"}


@dataclass
class World:
    """What a row's preparation may use; ``later`` runs at teardown (unmount, chattr -i)."""

    project: ComposeProject
    images: AppImages
    registry: Registry
    later: contextlib.ExitStack

    @property
    def state(self) -> Path:
        return self.project.state_dir

    def overlay(self, number: int) -> Path:
        return self.state / "revisions" / f"{number:04d}.yaml"

    def compose(self, text: str) -> None:
        self.project.write_file("compose.yaml", text)

    def release(self, greeting: str = "three") -> None:
        """A new, valid release of the base project (a changed environment)."""
        self.compose(compose_text(self.images.local("healthy"), env={"GREETING": greeting}))


@dataclass(frozen=True)
class Case:
    """The command to run: its arguments, extra environment, and a context around it."""

    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    around: Callable[[], contextlib.AbstractContextManager[object]] | None = None


@dataclass(frozen=True)
class Row:
    id: str
    base: str  # fresh | one | two | own (a project of its own, fresh)
    code: ExitCode
    needles: tuple[str, ...]  # regular expressions stderr must match (case-insensitive)
    prepare: Callable[[World], Case]


def _args(*args: str) -> Callable[[World], Case]:
    return lambda world: Case(args)


def _with_compose(text: str, *args: str) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        world.compose(text)
        return Case(args or ("up", *FAST))

    return prepare


def _with_directory(name: str, args: tuple[str, ...]) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        (world.project.dir / name).mkdir(exist_ok=True)
        return Case(args)

    return prepare


def _raw_compose(data: bytes) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        (world.project.dir / "compose.yaml").write_bytes(data)
        return Case(("up", *FAST))

    return prepare


def _compose_with(extra_top: str = "", service_extra: str = "", *args: str,
                  ) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        world.compose(compose_text(world.images.local("healthy"), env={"GREETING": "three"},
                                   extra=service_extra, top=extra_top or "x-rollback: {}"))
        return Case(args or ("up", *FAST))

    return prepare


BILLION_LAUGHS = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{chr(c)}: &{chr(c)} [{','.join([f'*{chr(c - 1)}'] * 9)}]" for c in range(98, 106)),
    "services:",
    "  app:",
    "    image: *i",
    "",
])


# -- preparations that need more than a file ----------------------------------------------------


def _new_release_then(args: tuple[str, ...], tweak: Callable[[World], None]
                      ) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        world.release()
        tweak(world)
        return Case(args)

    return prepare


def _cannot(reason: str) -> NoReturn:
    """A row this machine cannot set up: skipped locally, a failure under CI (which can)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def _chattr(world: World, path: Path, *, recursive: bool) -> None:
    if shutil.which("chattr") is None:
        _cannot("chattr is not installed: cannot make a directory read-only for root")
    flags = ["-R"] if recursive else []
    done = subprocess.run(["chattr", *flags, "+i", str(path)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        _cannot(f"chattr +i is not supported here: {done.stderr.strip()}")
    world.later.callback(subprocess.run, ["chattr", *flags, "-i", str(path)], check=False)


def _immutable_revisions(world: World) -> None:
    _chattr(world, world.state / "revisions", recursive=False)


def _immutable_state(world: World) -> None:
    _chattr(world, world.state, recursive=True)


def _mount(world: World, target: Path, *options: str, source: str = "tmpfs",
           kind: str | None = "tmpfs") -> None:
    args = ["mount", *(["-t", kind] if kind else []), *options, source, str(target)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        _cannot(f"cannot mount here ({' '.join(args)}): {done.stderr.strip()}")
    world.later.callback(subprocess.run, ["umount", "-l", str(target)], check=False)


def _read_only_mount(world: World) -> None:
    target = world.project.dir / ".rollback"
    _mount(world, target, "--bind", source=str(target), kind=None)
    done = subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        _cannot(f"cannot remount read-only: {done.stderr.strip()}")


def _full_disk(world: World) -> None:
    """A tiny tmpfs as ``.rollback`` holding the store's files, then filled to the last byte."""
    target = world.project.dir / ".rollback"
    saved = world.project.dir.parent / f"{world.project.name}-saved-store"
    shutil.copytree(target, saved, symlinks=True)
    pages = sum(math.ceil(p.stat().st_size / 4096) for p in saved.rglob("*") if p.is_file())
    _mount(world, target, "-o", f"size={max(16, 4 * (pages + 4))}k,mode=0755")
    shutil.copytree(saved, target, symlinks=True, dirs_exist_ok=True)
    try:
        with open(target / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
                os.fsync(filler.fileno())
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    with pytest.raises(OSError, match="No space"), open(target / "probe", "wb") as probe:
        probe.write(b"\0" * 4096)
        probe.flush()
        os.fsync(probe.fileno())


def _corrupt_overlay(number: int) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.overlay(number)
        path.write_text(path.read_text().replace("pull_policy: never", "pull_policy: always"))

    return tweak


def _write_history(text: str | bytes) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.state / "history.json"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return tweak


def _truncate_history(world: World) -> None:
    path = world.state / "history.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _history_edit(old: str, new: str, *, count: int = 1) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.state / "history.json"
        text = path.read_text()
        assert old in text, (old, text)
        path.write_text(text.replace(old, new, count))

    return tweak


def _delete_overlay(number: int) -> Callable[[World], None]:
    return lambda world: world.overlay(number).unlink()


def _symlink_overlay(number: int) -> Callable[[World], None]:
    def tweak(world: World) -> None:
        path = world.overlay(number)
        path.unlink()
        path.symlink_to("/etc/passwd")

    return tweak


def _then(args: tuple[str, ...], tweak: Callable[[World], None]) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        tweak(world)
        return Case(args)

    return prepare


def _missing_image(world: World) -> Case:
    ghost = world.registry.ref(world.registry.new_repo("crt-nope"), "1")
    world.compose(compose_text(ghost).replace("    pull_policy: never\n", ""))
    return Case(("up", *FAST))


def _registry_down(world: World) -> Case:
    repo = world.registry.new_repo("crt-offline")
    world.images.push("healthy", repo, "1")
    ref = world.registry.ref(repo, "1")
    world.images.remove_local(ref)  # the engine would have to pull it
    world.compose(compose_text(ref).replace("    pull_policy: never\n", ""))
    return Case(("up", *FAST), around=world.registry.down)


def _engine_down(*args: str) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        world.release()
        return Case(args, env=dict(NO_ENGINE))

    return prepare


def _gone_image(world: World) -> Case:
    """Revision 1 ran an image that is truly gone now (its tag and retention tag removed)."""
    ref = f"{world.project.name}-img:gone"
    first = world.images.build_fresh("healthy", ref, version="gone")
    world.compose(compose_text(ref))
    up(world.project)
    world.release()
    up(world.project)
    tags = docker("image", "inspect", "--format", "{{json .RepoTags}}", first).stdout
    for tag in re.findall(r'"([^"]+)"', tags):
        docker("image", "rm", tag)
    assert docker("image", "inspect", first, check=None).returncode != 0
    return Case(("revert", "--to", "1", *FAST))


ROWS: list[Row] = [
    # -- the compose file -----------------------------------------------------------------------
    Row("yaml-malformed", "one", ExitCode.BAD_INPUT, ("yaml|compose",),
        _with_compose("services:\n  app: [\n    image: x\n")),
    Row("yaml-alias-bomb", "one", ExitCode.BAD_INPUT, ("alias",),
        _with_compose(BILLION_LAUGHS)),
    Row("yaml-duplicate-key", "one", ExitCode.BAD_INPUT, ("app",),
        _with_compose("services:\n  app:\n    image: a\n  app:\n    image: b\n")),
    Row("yaml-not-utf8", "one", ExitCode.BAD_INPUT, ("utf|encod|compose",),
        _raw_compose(b"services:\n  app:\n    image: caf\xe9\xff\n")),
    Row("yaml-python-tag", "one", ExitCode.BAD_INPUT, ("services|python|tag",),
        _with_compose("services: !!python/object/apply:os.system ['touch pwned']\n")),
    Row("compose-empty", "one", ExitCode.BAD_INPUT, ("empty|no services",),
        _with_compose("")),
    Row("compose-no-services", "one", ExitCode.BAD_INPUT, ("service",),
        _with_compose("x-rollback: {timeout: 60s}\nservices: {}\n")),
    Row("compose-rejects-ports", "one", ExitCode.BAD_INPUT, ("ports",),
        _with_compose("services: {app: {image: x, ports: \"notalist\"}}\n")),
    Row("compose-required-variable", "one", ExitCode.BAD_INPUT, ("NEEDED_VAR",),
        _with_compose("services:\n  app:\n    image: \"${NEEDED_VAR:?set NEEDED_VAR}\"\n")),
    Row("compose-missing-file", "one", ExitCode.BAD_INPUT, ("nope\\.yaml",),
        _args("-f", "nope.yaml", "up", *FAST)),
    Row("compose-file-is-a-directory", "one", ExitCode.BAD_INPUT, ("somedir",),
        _with_directory("somedir", ("-f", "somedir", "up", *FAST))),
    Row("compose-missing-env-file", "one", ExitCode.BAD_INPUT, ("nope\\.env",),
        _args("--env-file", "nope.env", "up", *FAST)),
    Row("compose-bad-project-name", "one", ExitCode.BAD_INPUT, ("Bad_Name",),
        _args("-p", "Bad_Name!", "history")),
    Row("unknown-service", "one", ExitCode.BAD_INPUT, ("nosuch",), _args("up", "nosuch", *FAST)),
    # -- x-rollback settings --------------------------------------------------------------------
    Row("x-rollback-unknown-key", "one", ExitCode.BAD_INPUT, (r"x-rollback\.bogus",),
        _compose_with("x-rollback: {bogus: 1}")),
    Row("x-rollback-unknown-service-key", "one", ExitCode.BAD_INPUT,
        (r"services\.app\.x-rollback\.bogus",),
        _compose_with("", "x-rollback: {bogus: 1}")),
    Row("x-rollback-bad-timeout", "one", ExitCode.BAD_INPUT, (r"x-rollback\.timeout", "soon"),
        _compose_with("x-rollback: {timeout: soon}")),
    Row("x-rollback-bad-service-soak", "one", ExitCode.BAD_INPUT,
        (r"services\.app\.x-rollback\.min_healthy",),
        _compose_with("", "x-rollback: {min_healthy: -5s}")),
    Row("x-rollback-not-a-mapping", "one", ExitCode.BAD_INPUT, ("x-rollback",),
        _compose_with("x-rollback: [1, 2]")),
    Row("x-rollback-keep-zero", "one", ExitCode.BAD_INPUT, (r"x-rollback\.keep",),
        _compose_with("x-rollback: {keep: 0}")),
    Row("x-rollback-dir-not-a-path", "one", ExitCode.BAD_INPUT, (r"x-rollback\.dir",),
        _compose_with("x-rollback: {dir: 5}")),
    # -- flags and commands ---------------------------------------------------------------------
    Row("flag-timeout-soon", "one", ExitCode.BAD_INPUT, ("--timeout", "soon"),
        _args("up", "--timeout", "soon")),
    Row("flag-min-healthy-negative", "one", ExitCode.BAD_INPUT, ("--min-healthy",),
        _args("up", "--min-healthy", "-1s")),
    Row("flag-wait-lock-bad", "one", ExitCode.BAD_INPUT, ("--wait-lock",),
        _args("up", "--wait-lock", "forever", *FAST)),
    Row("flag-keep-zero", "one", ExitCode.BAD_INPUT, ("--keep",), _args("prune", "--keep", "0")),
    Row("flag-keep-zero-fresh", "fresh", ExitCode.BAD_INPUT, ("--keep",),
        _args("prune", "--keep", "0")),
    Row("flag-keep-not-a-number", "one", ExitCode.BAD_INPUT, ("--keep|many",),
        _args("prune", "--keep", "many")),
    Row("flag-pull-bad", "one", ExitCode.BAD_INPUT, ("--pull", "sometimes"),
        _args("up", "--pull", "sometimes", *FAST)),
    Row("unknown-command", "one", ExitCode.BAD_INPUT, ("frobnicate",), _args("frobnicate")),
    Row("unknown-option", "one", ExitCode.BAD_INPUT, ("--frobnicate",),
        _args("up", "--frobnicate")),
    Row("global-flag-without-value", "one", ExitCode.BAD_INPUT, ("-f",), _args("-f")),
    # -- revisions ------------------------------------------------------------------------------
    Row("revert-to-missing", "one", ExitCode.BAD_INPUT, ("99",), _args("revert", "--to", "99")),
    Row("revert-to-missing-fresh", "fresh", ExitCode.BAD_INPUT, ("99",),
        _args("revert", "--to", "99")),
    Row("revert-to-path", "one", ExitCode.BAD_INPUT, (r"\.\./\.\./etc/passwd",),
        _args("revert", "--to", "../../etc/passwd")),
    Row("revert-to-negative", "one", ExitCode.BAD_INPUT, ("-1",), _args("revert", "--to=-1")),
    Row("revert-nothing-earlier", "one", ExitCode.BAD_INPUT, ("earlier|no .*revision",),
        _args("revert", *FAST)),
    Row("diff-missing", "one", ExitCode.BAD_INPUT, ("99",), _args("diff", "1", "99")),
    Row("diff-path", "one", ExitCode.BAD_INPUT, (r"\.\./\.\./etc/passwd",),
        _args("diff", "../../etc/passwd", "1")),
    Row("diff-needs-two", "one", ExitCode.BAD_INPUT, ("two|fewer",), _args("diff")),
    # -- images and registries ------------------------------------------------------------------
    Row("image-missing-in-registry", "one", ExitCode.BAD_INPUT, ("crt-nope",), _missing_image),
    Row("registry-down-during-pull", "one", ExitCode.UNREACHABLE, ("registry|127\\.0\\.0\\.1",),
        _registry_down),
    Row("image-gone-for-revert", "own", ExitCode.BAD_INPUT, ("img:gone|sha256", "build|pull"),
        _gone_image),
    # -- the engine -----------------------------------------------------------------------------
    Row("engine-down-up", "one", ExitCode.UNREACHABLE, ("engine|daemon",), _engine_down("up")),
    Row("engine-down-revert", "two", ExitCode.UNREACHABLE, ("engine|daemon",),
        _engine_down("revert", *FAST)),
    Row("engine-down-status", "one", ExitCode.UNREACHABLE, ("engine|daemon",),
        _engine_down("status")),
    Row("engine-down-pin", "one", ExitCode.UNREACHABLE, ("engine|daemon",), _engine_down("pin")),
    # -- the store on disk ----------------------------------------------------------------------
    Row("read-only-revisions-dir", "one", ExitCode.BAD_INPUT,
        ("revisions", "permi|read-only"),
        _new_release_then(("up", *FAST), _immutable_revisions)),
    Row("read-only-state-dir", "one", ExitCode.BAD_INPUT, ("\\.rollback", "permi|read-only"),
        _new_release_then(("up", *FAST), _immutable_state)),
    Row("read-only-mount", "one", ExitCode.BAD_INPUT, ("\\.rollback", "read-only"),
        _new_release_then(("up", *FAST), _read_only_mount)),
    Row("disk-full", "one", ExitCode.BAD_INPUT, ("\\.rollback", "space"),
        _new_release_then(("up", *FAST), _full_disk)),
    Row("corrupt-overlay-revert", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        _then(("revert", "--to", "1", *FAST), _corrupt_overlay(1))),
    Row("corrupt-current-overlay-up", "two", ExitCode.BAD_INPUT, (r"0002\.yaml",),
        _new_release_then(("up", *FAST), _corrupt_overlay(2))),
    Row("corrupt-overlay-diff", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        _then(("diff", "1", "2"), _corrupt_overlay(1))),
    Row("deleted-overlay-revert", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        _then(("revert", "--to", "1", *FAST), _delete_overlay(1))),
    Row("symlinked-overlay-revert", "two", ExitCode.BAD_INPUT, (r"0001\.yaml",),
        _then(("revert", "--to", "1", *FAST), _symlink_overlay(1))),
    Row("history-not-json", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("history",), _write_history("{not json"))),
    Row("history-not-json-up", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _new_release_then(("up", *FAST), _write_history("{not json"))),
    Row("history-not-json-revert", "two", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("revert", *FAST), _write_history("{not json"))),
    Row("history-not-json-status", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("status",), _write_history("{not json"))),
    Row("history-binary", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("history",), _write_history(b"\xff\xfe\x00garbage\x80"))),
    Row("history-wrong-shape", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("history",), _write_history("[]"))),
    Row("history-truncated", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("history",), _truncate_history)),
    Row("history-unknown-status", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("revert", "--to", "1", *FAST),
              _history_edit('"status": "deployed"', '"status": "exploded"'))),
    Row("history-duplicate-numbers", "two", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("history",), _history_edit('"number": 2', '"number": 1'))),
    Row("history-future-format", "one", ExitCode.BAD_INPUT, (r"history\.json",),
        _then(("history",), _history_edit('"format": 1', '"format": 99'))),
]

RESULTS: dict[str, str] = {}


class Base:
    """A project in one of the base states, shared by the rows that start from it.

    A row that behaves leaves it as it found it, except for what the row's own preparation
    changed (a compose file, a corrupted revision): files are put back from the pristine copy
    after each row. If a row changed the containers (a product bug), the project is thrown
    away and built again, so one bad row cannot spoil the next ones.
    """

    def __init__(self, kind: str, parent: Path, images: AppImages) -> None:
        self.kind, self.parent, self.images = kind, parent, images
        self.project: ComposeProject | None = None
        self.pristine: Snapshot | None = None

    def acquire(self) -> ComposeProject:
        if self.project is not None and self.pristine is not None:
            _restore_files(self.project, self.pristine)
            now = snapshot(self.project)
            if now.containers == self.pristine.containers and not self.pristine.differences(now):
                return self.project
            self.release()
        self.project = ComposeProject(self.parent)
        _build_base(self.project, self.images, self.kind)
        self.pristine = snapshot(self.project)
        return self.project

    def release(self) -> None:
        if self.project is not None:
            self.project.cleanup()
        self.project, self.pristine = None, None


def _restore_files(project: ComposeProject, pristine: Snapshot) -> None:
    for path in sorted(project.dir.rglob("*"), reverse=True):
        rel = str(path.relative_to(project.dir))
        if path.is_symlink() or path.is_file():
            if pristine.files.get(rel) != (path.read_bytes() if not path.is_symlink() else None):
                path.unlink()
        elif path.is_dir() and rel + "/" not in pristine.files:
            shutil.rmtree(path)
    for rel, content in pristine.files.items():
        path = project.dir / rel.rstrip("/")
        if content == "directory":
            path.mkdir(parents=True, exist_ok=True)
        elif isinstance(content, bytes) and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def _build_base(project: ComposeProject, images: AppImages, kind: str) -> None:
    image = images.local("healthy")
    write_compose(project, compose_text(image, env={"GREETING": "one"}))
    if kind in ("one", "two"):
        assert up(project)["revision"] == 1
    if kind == "two":
        write_compose(project, compose_text(image, env={"GREETING": "two"}))
        assert up(project)["revision"] == 2


@pytest.fixture(scope="module")
def bases(docker_engine: None, images: AppImages,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Base]]:
    parent = tmp_path_factory.mktemp("bad-input")
    made = {kind: Base(kind, parent, images) for kind in ("fresh", "one", "two")}
    try:
        yield made
    finally:
        for base in made.values():
            base.release()


@pytest.fixture
def world(request: pytest.FixtureRequest, bases: dict[str, Base], images: AppImages,
          registry: Registry, tmp_path: Path) -> Iterator[World]:
    row: Row = request.node.callspec.params["row"]
    if row.base == "own":
        project = ComposeProject(tmp_path)
        _build_base(project, images, "fresh")
    else:
        project = bases[row.base].acquire()
    try:
        with contextlib.ExitStack() as later:
            yield World(project, images, registry, later)
    finally:
        if row.base == "own":
            project.cleanup()


def test_the_table_is_big_enough() -> None:
    assert len(ROWS) >= 30
    assert len({row.id for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_input(world: World, row: Row) -> None:
    RESULTS[row.id] = "error in setup"
    case = row.prepare(world)
    before = snapshot(world.project)
    with case.around() if case.around else contextlib.nullcontext():
        result = run_cli(world.project, *case.args, env=case.env, timeout=120)
    after = snapshot(world.project)
    problems = error_problems(result, code=int(row.code), needles=())
    problems += [f"stderr does not match {n!r}" for n in row.needles
                 if not re.search(n, result.stderr, re.IGNORECASE)]
    problems += [f"changed: {d}" for d in before.differences(
        after, finished_journal_ok=JOURNAL_MAY_RECORD_A_FINISHED_OPERATION)]
    line = " ".join(result.stderr.split())[:110]
    RESULTS[row.id] = ("ok" if not problems else "FAIL: " + "; ".join(problems)) + f" | {line}"
    assert not problems, "\n".join([*problems, describe(result, expected=int(row.code))])


def test_zz_bad_input_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Print what every row of the table did (run last; also written to a file)."""
    if not RESULTS:
        pytest.skip("no bad-input row ran in this session")
    rows = [[row.id, str(int(row.code)), RESULTS.get(row.id, "not run")] for row in ROWS]
    passed = sum(1 for r in rows if r[2].startswith("ok"))
    ran = sum(1 for r in rows if r[2] != "not run")
    text = table(["INPUT", "EXIT", "RESULT | stderr"], rows)
    publish("bad-input", f"bad-input table: {ran} inputs tried, {passed} behaved\n{text}", capsys)
