"""The docker and compose command lines, built the way python-on-whales builds them.

``Engine`` runs every docker command through python-on-whales' ``ClientConfig.docker_cmd``
prefix. Importing python-on-whales costs ~0.2-0.4 s of CPU (pydantic models), which a
read-only ``status`` would pay for two ``docker`` calls, and which ``up`` would pay before it
could start its ``compose config`` calls. So the prefix is built here, by the same rules
(``python_on_whales.client_config.ClientConfig.docker_cmd`` / ``docker_compose_cmd``, 0.81):
the commands start at once and python-on-whales is imported while they run.
``tests/unit/test_dockercmd.py`` holds the two to the same output for every option.

Compose is run as the docker CLI runs it (docker/cli ``cli-plugins/manager``): the first
``docker-compose`` in the CLI's plugin directories (the config's ``cliPluginsExtraDirs``, then
``<config dir>/cli-plugins``, then the system directories), with docker's global flags, then
``compose`` and its own, and ``DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND`` set (the plugin's
sign that a CLI started it). Started by way of ``docker compose``, every call ran the 76 MB
plugin twice (once for its metadata, which the CLI checks first) behind the CLI itself: 0.10 s
of CPU and 0.09 s for a ``compose config`` against 0.05 s and 0.05 s, four times per ``up``.
Where the lookup finds no runnable plugin (or cannot read the config), ``docker compose``
runs, and the docker CLI says what is wrong.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from compose_rollback.errors import Unreachable

if TYPE_CHECKING:
    from compose_rollback.engine import DockerOptions
    from compose_rollback.project import Project


def docker_prefix(options: DockerOptions) -> list[str]:
    """``docker`` (by its path) with docker's own global flags, in python-on-whales' order."""
    found = shutil.which("docker")
    if found is None:
        raise Unreachable("the docker CLI is not on PATH",
                          hint="install it (the docker-ce-cli or docker.io package)")
    words = [found]
    for flag, value in (("--config", options.config), ("--context", options.context)):
        if value is not None:
            words += [flag, str(value)]
    for flag, value in (("--host", options.host), ("--log-level", options.log_level)):
        if value is not None:
            words += [flag, str(value)]
    if options.tls:
        words.append("--tls")
    for flag, value in (("--tlscacert", options.tlscacert), ("--tlscert", options.tlscert),
                        ("--tlskey", options.tlskey)):
        if value is not None:
            words += [flag, str(value)]
    if options.tlsverify:
        words.append("--tlsverify")
    return words


#: docker/cli ``cli-plugins/manager`` (``defaultSystemPluginDirs``, Linux), after the config's.
SYSTEM_PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
                      "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")
#: What the docker CLI sets for a plugin it runs; compose reads its arguments as a plugin's
#: (docker's global flags, ``compose``, its own) only when it is set.
PLUGIN_ENV = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND"
#: The docker CLI's socket to the plugins it started (it closes it to stop them on Ctrl-C).
#: One inherited from the CLI that started us is not for our compose: it is cleared.
PLUGIN_SOCKET_ENV = "DOCKER_CLI_PLUGIN_SOCKET"


def config_dir(options: DockerOptions) -> Path:
    """The docker CLI's config directory: ``--config``, ``DOCKER_CONFIG``, ``~/.docker``."""
    if options.config:
        return Path(options.config)
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


@functools.lru_cache(maxsize=8)
def compose_plugin(directory: Path) -> str | None:
    """The Compose plugin ``docker compose`` runs for the config in ``directory``: the first
    ``docker-compose`` in the plugin directories (a compose-rollback shim included: it is what
    the CLI runs). ``None`` when the first one found is not a runnable file, or the config
    cannot be read: then ``docker compose`` runs, and reports the problem."""
    dirs: list[str] = []
    try:
        data = json.loads((directory / "config.json").read_bytes())
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError):
        return None
    extra = data.get("cliPluginsExtraDirs") if isinstance(data, dict) else None
    if isinstance(extra, list):
        dirs += [d for d in extra if isinstance(d, str) and d]
    dirs += [str(directory / "cli-plugins"), *SYSTEM_PLUGIN_DIRS]
    for folder in dirs:  # as PluginRunCommand: the first path that stat finds (links followed)
        candidate = Path(folder, "docker-compose")
        if candidate.exists():
            runnable = candidate.is_file() and os.access(candidate, os.X_OK)
            return str(candidate) if runnable else None
    return None


def compose_env(options: DockerOptions) -> dict[str, str] | None:
    """What the environment of a compose command adds (``None``: nothing, it runs through the
    docker CLI), to be laid over this process's own."""
    if compose_plugin(config_dir(options)) is None:
        return None
    return {PLUGIN_ENV: os.environ.get(PLUGIN_ENV) or "docker", PLUGIN_SOCKET_ENV: ""}


def compose_prefix(options: DockerOptions, project: Project,
                   files: Sequence[Path] = ()) -> list[str]:
    """``docker compose`` with the project's files, profiles, env files, name and directory,
    run as the docker CLI runs its plugin (the plugin's path instead of docker's, the same
    words after it; ``compose_env``)."""
    words = [*docker_prefix(options), "compose"]
    plugin = compose_plugin(config_dir(options))
    if plugin is not None:
        words[0] = plugin
    for path in files or project.files:
        words += ["--file", str(path)]
    for profile in project.profiles:
        words += ["--profile", profile]
    for env_file in project.env_files:
        words += ["--env-file", str(env_file)]
    words += ["--project-name", project.name, "--project-directory", str(project.directory)]
    return words
