"""The shim and the argv splitter read global flags alike, through the real docker CLI.

The run's one real ``install.sh`` (``support.installed``; a ``HOME``/``DOCKER_CONFIG`` of each
test's own): ``docker compose …`` runs the rendered shim, which hands ``rollback`` to the
installed compose-rollback. Each call spells docker's and compose's global flags a different
way pflag accepts (combined booleans ``-Dc ctx``, ``-vf x``; ``-pX``; ``--file=x``;
``--dry-run=true``) and checks the project and files that compose-rollback resolved (``up
--dry-run --json``), and, where compose accepts the same spelling, that plain compose resolves
the same project.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from support.compose_project import ComposeProject
from support.helpers import describe
from support.installed import PluginUser
from support.testimages import AppImages

pytestmark = pytest.mark.docker

NAME = "{name}"  # placeholder in the calls below: the project's unique name


@pytest.fixture
def alt_project(project: ComposeProject, images: AppImages) -> ComposeProject:
    """Only ``alt.yaml``: a call that loses ``-f`` finds no compose file at all."""
    project.write_file("alt.yaml", f"services:\n  app:\n    image: {images.local('healthy')}\n"
                       "    pull_policy: never\n")
    return project


def _fill(words: Sequence[str], name: str) -> list[str]:
    return [w.replace(NAME, name) for w in words]


#: (docker globals, compose globals, does compose itself accept this spelling)
CALLS = [
    (["-Dc", "default"], ["-f", "alt.yaml", "-p", NAME], True),
    (["-Dl", "error"], ["-falt.yaml", f"-p{NAME}"], True),
    (["-D=true", "--context=default"], ["--file=alt.yaml", f"-p={NAME}"], True),
    (["-DDc", "default"], ["--project-name", NAME, "--file", "alt.yaml"], True),
    # compose sends a leading -v to its `version` command, so only we read these (pflag's way)
    (["-D"], ["-vf", "alt.yaml", "-p", NAME], False),
    ([], ["-vp", NAME, "-f", "alt.yaml"], False),
    (["-c", "default"], ["-p", NAME, "-vfalt.yaml"], False),
]


@pytest.mark.parametrize(("docker_flags", "compose_flags", "compose_accepts"), CALLS,
                         ids=[" ".join([*d, "compose", *c]) for d, c, _ in CALLS])
def test_both_resolve_the_project_and_files(
        plugin_user: PluginUser, alt_project: ComposeProject, docker_flags: list[str],
        compose_flags: list[str], compose_accepts: bool) -> None:
    name = alt_project.name
    globals_ = [*_fill(docker_flags, name), "compose", *_fill(compose_flags, name)]
    done = plugin_user.docker(*globals_, "rollback", "up", "--dry-run", "--json",
                              cwd=alt_project.dir)
    assert done.returncode == 0, describe(done)
    result = json.loads(done.stdout)
    assert result["outcome"] == "dry_run", result
    overlay = result["overlay"]
    assert f"name: {name}\n" in overlay, overlay
    assert f"docker compose -f alt.yaml -f .rollback/{name}/revisions/0001.yaml up -d" \
        in overlay, overlay
    assert not (alt_project.dir / ".rollback").exists()
    if compose_accepts:
        config = plugin_user.docker(*globals_, "config", "--format", "json",
                                    cwd=alt_project.dir)
        assert config.returncode == 0, describe(config)
        assert json.loads(config.stdout)["name"] == name


def test_compose_dry_run_global_with_a_value(plugin_user: PluginUser,
                                             alt_project: ComposeProject) -> None:
    name = alt_project.name
    done = plugin_user.docker("-D", "compose", "--dry-run=true", "-f", "alt.yaml", "-p", name,
                              "rollback", "up", "--json", cwd=alt_project.dir)
    assert done.returncode == 0, describe(done)
    assert json.loads(done.stdout)["outcome"] == "dry_run"
    assert alt_project.containers() == []


def test_a_combined_host_flag_reaches_our_engine(plugin_user: PluginUser,
                                                 alt_project: ComposeProject) -> None:
    """``-DH`` takes the next word as docker's host: ours then finds no engine there (5)."""
    done = plugin_user.docker("-DH", "unix:///tmp/crt-no-such-engine.sock", "compose", "-f",
                              "alt.yaml", "-p", alt_project.name, "rollback", "status",
                              cwd=alt_project.dir)
    assert done.returncode == 5, describe(done)
    assert done.stderr.strip().splitlines() == [
        "docker compose rollback: the Docker engine at unix:///tmp/crt-no-such-engine.sock "
        "is unreachable; start it (dockerd / "
        "systemctl start docker) or check DOCKER_HOST and --context"]
