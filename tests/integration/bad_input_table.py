"""The vocabulary of the bad-input table (``test_bad_input.py``): a row, the world its
preparation may use, the case it runs, and the preparations most rows are made of.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from robust_helpers import FAST, compose_text

from compose_rollback.errors import ExitCode
from support.compose_project import ComposeProject
from support.prereq import missing
from support.registry import Registry
from support.testimages import AppImages

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


def only(*args: str) -> Callable[[World], Case]:
    return lambda world: Case(args)


def with_compose(text: str, *args: str) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        world.compose(text)
        return Case(args or ("up", *FAST))

    return prepare


def with_directory(name: str, args: tuple[str, ...]) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        (world.project.dir / name).mkdir(exist_ok=True)
        return Case(args)

    return prepare


def raw_compose(data: bytes) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        (world.project.dir / "compose.yaml").write_bytes(data)
        return Case(("up", *FAST))

    return prepare


def compose_with(extra_top: str = "", service_extra: str = "", *args: str,
                  ) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        world.compose(compose_text(world.images.local("healthy"), env={"GREETING": "three"},
                                   extra=service_extra, top=extra_top or "x-rollback: {}"))
        return Case(args or ("up", *FAST))

    return prepare


# -- preparations that need more than a file ----------------------------------------------------


def new_release_then(args: tuple[str, ...], tweak: Callable[[World], None]
                      ) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        world.release()
        tweak(world)
        return Case(args)

    return prepare


def then(args: tuple[str, ...], tweak: Callable[[World], None]) -> Callable[[World], Case]:
    def prepare(world: World) -> Case:
        tweak(world)
        return Case(args)

    return prepare


def cannot(reason: str) -> NoReturn:
    """A row this machine cannot set up: skipped locally, a failure under CI (which can)."""
    missing(reason, fix=None)
