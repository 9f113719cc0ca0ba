"""Bad-input rows: images that cannot be found or pulled, an engine that cannot be reached."""

from __future__ import annotations

import re
from collections.abc import Callable

from bad_input_table import NO_ENGINE, Case, Row, World
from robust_helpers import FAST, compose_text, up

from compose_rollback.errors import ExitCode
from support.helpers import docker


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


IMAGE_AND_ENGINE_ROWS: list[Row] = [
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
]
