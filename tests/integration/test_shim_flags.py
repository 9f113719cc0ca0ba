"""The shim and the argv splitter read global flags alike, through the real docker CLI.

One real ``install.sh`` into a throw-away ``HOME``/``DOCKER_CONFIG`` (as test_install.py does):
``docker compose …`` runs the rendered shim, which hands ``rollback`` to the installed
compose-rollback. Each call spells docker's and compose's global flags a different way pflag
accepts (combined booleans ``-Dc ctx``, ``-vf x``; ``-pX``; ``--file=x``; ``--dry-run=true``)
and checks the project and files that compose-rollback resolved (``up --dry-run --json``), and,
where compose accepts the same spelling, that plain compose resolves the same project.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.compose_project import REPO_ROOT, ComposeProject
from support.helpers import describe
from support.plugins import locate_real_compose, plugin_dirs
from support.testimages import AppImages

# One worker for the whole file: its module fixture (a real install) is built once.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("shim-flags")]

NAME = "{name}"  # placeholder in the calls below: the project's unique name


@dataclass(frozen=True)
class Installed:
    env: dict[str, str]
    entry: Path

    def docker(self, args: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env=self.env, cwd=cwd, capture_output=True,
                              text=True, timeout=240, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    real = locate_real_compose()
    if real is None:
        message = f"no Docker Compose plugin found in {plugin_dirs()}; run scripts/provision.sh"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("shim-flags")
    config = root / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    (config / "cli-plugins" / "docker-compose").symlink_to(real)
    (root / "home").mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOCKER_CLI_PLUGIN_", "COMPOSE_")) and k != "DOCKER_CONTEXT"}
    env.update(HOME=str(root / "home"), DOCKER_CONFIG=str(config),
               COMPOSE_ROLLBACK_HOME=str(root / "cr-home"),
               PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR",
                                            str(Path.home() / ".cache" / "pip")))
    done = subprocess.run(["bash", str(REPO_ROOT / "install.sh")], env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, describe(done)
    try:
        yield Installed(env=env, entry=root / "cr-home" / "venv" / "bin" / "compose-rollback")
    finally:
        subprocess.run(["bash", str(REPO_ROOT / "install.sh"), "--uninstall"], env=env,
                       capture_output=True, timeout=300, check=False)


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
        installed: Installed, alt_project: ComposeProject, docker_flags: list[str],
        compose_flags: list[str], compose_accepts: bool) -> None:
    name = alt_project.name
    globals_ = [*_fill(docker_flags, name), "compose", *_fill(compose_flags, name)]
    done = installed.docker([*globals_, "rollback", "up", "--dry-run", "--json"],
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
        config = installed.docker([*globals_, "config", "--format", "json"],
                                  cwd=alt_project.dir)
        assert config.returncode == 0, describe(config)
        assert json.loads(config.stdout)["name"] == name


def test_compose_dry_run_global_with_a_value(installed: Installed,
                                             alt_project: ComposeProject) -> None:
    name = alt_project.name
    done = installed.docker(["-D", "compose", "--dry-run=true", "-f", "alt.yaml", "-p", name,
                             "rollback", "up", "--json"], cwd=alt_project.dir)
    assert done.returncode == 0, describe(done)
    assert json.loads(done.stdout)["outcome"] == "dry_run"
    assert alt_project.containers() == []


def test_a_combined_host_flag_reaches_our_engine(installed: Installed,
                                                 alt_project: ComposeProject) -> None:
    """``-DH`` takes the next word as docker's host: ours then finds no engine there (5)."""
    done = installed.docker(["-DH", "unix:///tmp/crt-no-such-engine.sock", "compose", "-f",
                             "alt.yaml", "-p", alt_project.name, "rollback", "status"],
                            cwd=alt_project.dir)
    assert done.returncode == 5, describe(done)
    assert done.stderr.strip().splitlines() == [
        "docker compose rollback: the Docker engine at unix:///tmp/crt-no-such-engine.sock "
        "is unreachable; start it (dockerd / "
        "systemctl start docker) or check DOCKER_HOST and --context"]
