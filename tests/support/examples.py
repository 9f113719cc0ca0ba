"""Run the shipped examples (``examples/``) as throw-away test projects."""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .compose_project import REPO_ROOT, ComposeProject
from .helpers import free_port

EXAMPLES_DIR = REPO_ROOT / "examples"


@dataclass(frozen=True)
class Quickstart:
    """``examples/quickstart`` copied into a test project.

    ``env`` holds what its commands need: ``QUICKSTART_PORT`` (a free port instead of 8088),
    ``ROLLBACK_CMD`` and ``PYTHONPATH`` (this checkout's CLI, for ``demo.sh``).
    """

    dir: Path
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def demo(self) -> Path:
        return self.dir / "demo.sh"


def copy_quickstart(project: ComposeProject, *, busybox: Path) -> Quickstart:
    """Copy ``examples/quickstart`` into ``project.dir`` and make it that project.

    The compose ``name:`` becomes the project's name and the image ``<project>-web``, so the
    copy never touches a real quickstart on the same engine and ``project.cleanup()`` removes
    all it builds.
    """
    shutil.copytree(EXAMPLES_DIR / "quickstart", project.dir, dirs_exist_ok=True)
    shutil.copy2(busybox, project.dir / "app" / "busybox")
    compose = project.dir / "compose.yaml"
    text = compose.read_text()
    text = re.sub(r"(?m)^name: .*$", f"name: {project.name}", text)
    text = text.replace("image: quickstart-web:", f"image: {project.name}-web:")
    compose.write_text(text)
    python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        "QUICKSTART_PORT": str(free_port()),
        "ROLLBACK_CMD": f"{sys.executable} -m compose_rollback",
        "PYTHONPATH": python_path,
    }
    return Quickstart(dir=project.dir, port=int(env["QUICKSTART_PORT"]), env=env)


@dataclass(frozen=True)
class ZeroDowntime:
    """``examples/zero-downtime`` copied into a test project.

    ``env`` holds ``ZERO_DOWNTIME_PORT`` (a free port instead of 8080) and ``BUSYBOX``;
    the images are ``<project>-web:<version>`` and ``<project>-lb:2.6``.
    """

    dir: Path
    port: int
    env: dict[str, str]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def build_images(self) -> Path:
        return self.dir / "build-images.sh"


def copy_zero_downtime(project: ComposeProject, *, busybox: Path) -> ZeroDowntime:
    """Copy ``examples/zero-downtime`` into ``project.dir`` and make it that project (its
    name and image names follow the project, so ``project.cleanup()`` removes them)."""
    shutil.copytree(EXAMPLES_DIR / "zero-downtime", project.dir, dirs_exist_ok=True)
    compose = project.dir / "compose.yaml"
    text = re.sub(r"(?m)^name: .*$", f"name: {project.name}", compose.read_text())
    text = text.replace("image: zero-downtime-", f"image: {project.name}-")
    compose.write_text(text)
    env = {"ZERO_DOWNTIME_PORT": str(free_port()), "BUSYBOX": str(busybox)}
    return ZeroDowntime(dir=project.dir, port=int(env["ZERO_DOWNTIME_PORT"]), env=env)
