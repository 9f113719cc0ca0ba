"""Our docker/compose command prefix is python-on-whales' own, for every option.

``compose_rollback.dockercmd`` builds the prefix without importing python-on-whales (so the
first docker calls start before that ~0.3 s import); python-on-whales' ``ClientConfig`` is
the reference it must match, word for word, except that compose runs as the docker CLI runs
its plugin: the plugin's path in place of docker's (found as the CLI finds it), the same words
after it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from compose_rollback import dockercmd
from compose_rollback.dockercmd import compose_env, compose_plugin, compose_prefix, docker_prefix
from compose_rollback.engine import DockerOptions
from compose_rollback.errors import Unreachable
from compose_rollback.project import Project

OPTION_VALUES = {
    "host": [None, "unix:///run/other.sock", "ssh://deploy@build-box"],
    "context": [None, "staging"],
    "config": [None, "/etc/docker-alt"],
    "log_level": [None, "debug"],
    "tls": [None, False, True],
    "tlsverify": [None, True],
    "tlscacert": [None, "/certs/ca.pem"],
    "tlscert": [None, "/certs/cert.pem"],
    "tlskey": [None, "/certs/key.pem"],
}


def _reference(options: DockerOptions, project: Project | None, files: tuple[Path, ...]
               ) -> tuple[list[str], list[str] | None]:
    from python_on_whales import DockerClient

    compose = {}
    if project is not None:
        compose = {"compose_files": list(files or project.files),
                   "compose_project_name": project.name,
                   "compose_project_directory": project.directory,
                   "compose_env_files": list(project.env_files) or None,
                   "compose_profiles": list(project.profiles)}
    client = DockerClient(host=options.host, context=options.context, config=options.config,
                          log_level=options.log_level, tls=options.tls,
                          tlsverify=options.tlsverify, tlscacert=options.tlscacert,
                          tlscert=options.tlscert, tlskey=options.tlskey, **compose)
    config = client.client_config
    docker = [str(w) for w in config.docker_cmd]
    return docker, ([str(w) for w in config.docker_compose_cmd] if project else None)


def _option_sets() -> list[DockerOptions]:
    names = list(OPTION_VALUES)
    sets = [DockerOptions()]
    for name in names:  # each option alone, every value
        sets += [DockerOptions(**{name: value}) for value in OPTION_VALUES[name]]
    for combo in itertools.product(*([*OPTION_VALUES[n][-1:], None] for n in names)):
        sets.append(DockerOptions(**dict(zip(names, combo, strict=True))))
    return sets


PROJECTS = [
    Project(name="shop", directory=Path("/srv/shop"), files=(Path("/srv/shop/compose.yaml"),)),
    Project(name="shop-2", directory=Path("/srv/with space"),
            files=(Path("/srv/with space/a.yaml"), Path("/srv/with space/b.yml")),
            env_files=(Path("/srv/with space/.env.prod"), Path("/srv/x.env")),
            profiles=("debug", "jobs")),
]


@pytest.mark.parametrize("options", _option_sets())
def test_docker_prefix_is_python_on_whales_own(options: DockerOptions) -> None:
    expected, _ = _reference(options, None, ())
    assert docker_prefix(options) == expected


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.name)
@pytest.mark.parametrize("files", [(), (Path("/tmp/rev/0003.yaml"),)], ids=["own", "overlay"])
@pytest.mark.parametrize("options", [DockerOptions(),
                                     DockerOptions(host="tcp://127.0.0.1:2376", tls=True,
                                                   tlscacert="/c/ca.pem"),
                                     DockerOptions(context="edge", config="/cfg")])
def test_compose_prefix_is_python_on_whales_own(options: DockerOptions, project: Project,
                                                 files: tuple[Path, ...],
                                                 plugins: Plugins) -> None:
    """Without a plugin to run, ``docker compose``; with one, the same words after it."""
    if options.config:  # a config dir of the test's own
        options = dataclasses.replace(options, config=str(plugins.root / "cfg"))
    _, expected = _reference(options, project, files)
    assert expected is not None
    assert compose_prefix(options, project, files) == expected
    assert compose_env(options) is None
    config = Path(options.config) if options.config else plugins.config
    plugin = plugins.make(config / "cli-plugins")
    assert compose_prefix(options, project, files) == [str(plugin), *expected[1:]]
    assert compose_env(options) == {"DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND": "docker",
                                    "DOCKER_CLI_PLUGIN_SOCKET": ""}


class Plugins:
    """A docker config dir (``DOCKER_CONFIG``) and system plugin dirs of the test's own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "config"
        self.system = [root / "sys1", root / "sys2"]

    def make(self, folder: Path, *, mode: int = 0o755) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        plugin = folder / "docker-compose"
        plugin.write_text("#!/bin/sh\n")
        plugin.chmod(mode)
        compose_plugin.cache_clear()
        return plugin

    def extra_dirs(self, *dirs: object) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        (self.config / "config.json").write_text(json.dumps({"cliPluginsExtraDirs": list(dirs)}))
        compose_plugin.cache_clear()


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plugins]:
    found = Plugins(tmp_path)
    monkeypatch.setenv("DOCKER_CONFIG", str(found.config))
    monkeypatch.delenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", raising=False)
    monkeypatch.setattr(dockercmd, "SYSTEM_PLUGIN_DIRS", tuple(map(str, found.system)))
    compose_plugin.cache_clear()
    yield found
    compose_plugin.cache_clear()


def _found() -> str | None:
    return compose_plugin(dockercmd.config_dir(DockerOptions()))


def test_the_plugin_is_looked_up_in_the_docker_clis_order(plugins: Plugins) -> None:
    """``cliPluginsExtraDirs``, then ``<config>/cli-plugins``, then the system dirs."""
    assert _found() is None
    last = plugins.make(plugins.system[1])
    assert _found() == str(last)
    system = plugins.make(plugins.system[0])
    assert _found() == str(system)
    own = plugins.make(plugins.config / "cli-plugins")
    assert _found() == str(own)
    extra = plugins.make(plugins.root / "extra")
    plugins.extra_dirs(str(plugins.root / "missing"), 7, str(plugins.root / "extra"))
    assert _found() == str(extra)


def test_a_link_is_run_by_its_path_and_a_broken_one_passed_over(plugins: Plugins) -> None:
    real = plugins.make(plugins.root / "real")
    linked = plugins.system[0] / "docker-compose"
    plugins.system[0].mkdir()
    linked.symlink_to(real)
    broken = plugins.config / "cli-plugins" / "docker-compose"
    broken.parent.mkdir(parents=True)
    broken.symlink_to(plugins.root / "gone")
    compose_plugin.cache_clear()
    assert _found() == str(linked)


@pytest.mark.parametrize("kind", ["not executable", "directory", "bad config"])
def test_what_the_cli_would_reject_is_left_to_the_cli(plugins: Plugins, kind: str) -> None:
    """The first one found cannot run (or the config cannot be read): ``docker compose``
    runs, and the docker CLI says what is wrong, as it would have."""
    plugins.make(plugins.system[0])
    if kind == "not executable":
        plugins.make(plugins.config / "cli-plugins", mode=0o644)
    elif kind == "directory":
        (plugins.config / "cli-plugins" / "docker-compose").mkdir(parents=True)
    else:
        plugins.config.mkdir()
        (plugins.config / "config.json").write_text("{not json")
    compose_plugin.cache_clear()
    assert _found() is None
    assert compose_env(DockerOptions()) is None
    assert compose_prefix(DockerOptions(), PROJECTS[0])[1] == "compose"


def test_the_cli_command_we_were_started_by_is_passed_on(plugins: Plugins,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    plugins.make(plugins.system[0])
    monkeypatch.setenv("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "/opt/bin/docker")
    monkeypatch.setenv("DOCKER_CLI_PLUGIN_SOCKET", "@docker_cli_outer")
    assert compose_env(DockerOptions()) == {
        "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND": "/opt/bin/docker",
        "DOCKER_CLI_PLUGIN_SOCKET": ""}


def test_no_docker_cli_is_unreachable_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Unreachable, match="docker CLI is not on PATH"):
        docker_prefix(DockerOptions())


def test_status_path_does_not_import_python_on_whales() -> None:
    """Building commands (what ``status`` does before its two docker calls) needs no
    python-on-whales; ``warm`` is what imports it."""
    import subprocess

    code = ("import sys; from compose_rollback.engine import Engine; e = Engine(); "
            "e.docker_cmd(); assert 'python_on_whales' not in sys.modules, 'imported'; "
            "e.warm(); assert 'python_on_whales' in sys.modules, 'not warmed'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
