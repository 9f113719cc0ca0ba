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

The rows live by theme in ``bad_input_inputs.py`` (compose file, settings, flags, revisions),
``bad_input_engine.py`` (images, registries, the engine) and ``bad_input_store.py`` (the store
on disk); ``bad_input_table.py`` holds what a row is made of.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from bad_input_engine import IMAGE_AND_ENGINE_ROWS
from bad_input_inputs import INPUT_ROWS
from bad_input_store import STORE_ROWS
from bad_input_table import Row, World
from robust_helpers import (
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

from support.compose_project import ComposeProject
from support.helpers import describe
from support.registry import Registry
from support.testimages import AppImages

pytestmark = pytest.mark.docker

#: The journal (machine-local, git-ignored) records each step *before* it is taken, so an
#: operation refused half-way (a read-only or full store) may leave ``begin ... end`` in it.
#: That is no change for the user; set this to False to demand byte-identical journals too.
JOURNAL_MAY_RECORD_A_FINISHED_OPERATION = True

ROWS: list[Row] = [*INPUT_ROWS, *IMAGE_AND_ENGINE_ROWS, *STORE_ROWS]

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


# One worker runs every row, so each base (one or two deployed revisions) is built once, not
# on each worker.
@pytest.mark.xdist_group("bad-input")
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


@pytest.mark.xdist_group("bad-input")  # after every row, on the worker that ran them
def test_zz_bad_input_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Print what every row of the table did (run last; also written to a file)."""
    if not RESULTS:
        pytest.skip("no bad-input row ran in this session")
    rows = [[row.id, str(int(row.code)), RESULTS.get(row.id, "not run")] for row in ROWS]
    passed = sum(1 for r in rows if r[2].startswith("ok"))
    ran = sum(1 for r in rows if r[2] != "not run")
    text = table(["INPUT", "EXIT", "RESULT | stderr"], rows)
    publish("bad-input", f"bad-input table: {ran} inputs tried, {passed} behaved\n{text}", capsys)
