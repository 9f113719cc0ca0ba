"""``up``'s first wait, started as early as the CLI knows the project: the two models Compose
gives (``compose config``, interpolated and not), then the snapshot a revision keeps, derived
and checked by ``snapshot.derive``."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from compose_rollback.filecheck import check_files, may_alias
from compose_rollback.project import Project
from compose_rollback.snapshot import ConfigEngine, derive, non_interpolated


class ReadingEngine(ConfigEngine, Protocol):
    def warm(self) -> None: ...


class Reading:
    """The project's two models, read by two ``compose config`` side by side from the moment a
    command knows its project (the interpolated model: the images, in memory only; the other:
    what a revision keeps), then the snapshot derived and checked (``derive``).

    ``up`` waits for these before anything else, so the CLI starts them before it imports the
    deploy machinery, which then loads while compose reads the files. The files are checked
    (``check_files``: YAML syntax, alias bombs) first when they hold an anchor, so compose
    never reads an alias bomb; without one (most files) while compose reads them, as that
    check costs 0.03-0.06 s of CPU (the YAML parser's import, a pure-Python parse).
    """

    def __init__(self, engine: ReadingEngine, project: Project) -> None:
        bomb_possible = may_alias(project)
        if bomb_possible:
            check_files(project)
        self.engine, self.project = engine, project
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="compose-config")
        self._model = pool.submit(engine.config, project, interpolate=True)
        self._snapshot = pool.submit(non_interpolated, engine, project)
        pool.shutdown(wait=False)  # the calls go on; the interpreter waits for them at exit
        if not bomb_possible:
            check_files(project)  # its verdict comes first: compose's is not awaited yet

    def result(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The interpolated model and the derived snapshot (``derive``'s errors as they are).

        python-on-whales' runner (``warm``, ~0.2 s of CPU, first needed to inspect the images)
        is imported meanwhile, in a thread: mostly while this one waits on compose."""
        threading.Thread(target=_warm, args=(self.engine,), name="warm").start()
        model = self._model.result()  # first: a project compose rejects is reported as such
        return model, derive(engine=self.engine, project=self.project, model=model,
                             snapshot=self._snapshot.result())


def _warm(engine: ReadingEngine) -> None:
    with contextlib.suppress(Exception):  # whoever needs the runner next gets the error
        engine.warm()
