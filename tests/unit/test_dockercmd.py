"""Our docker/compose command prefix is python-on-whales' own, for every option.

``compose_rollback.dockercmd`` builds the prefix without importing python-on-whales (so the
first docker calls start before that ~0.3 s import); python-on-whales' ``ClientConfig`` is
the reference it must match, word for word.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from compose_rollback.dockercmd import compose_prefix, docker_prefix
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
                                                 files: tuple[Path, ...]) -> None:
    _, expected = _reference(options, project, files)
    assert compose_prefix(options, project, files) == expected


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
