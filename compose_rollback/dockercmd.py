"""The docker and compose command lines, built the way python-on-whales builds them.

``Engine`` runs every docker command through python-on-whales' ``ClientConfig.docker_cmd``
prefix. Importing python-on-whales costs ~0.2-0.4 s of CPU (pydantic models), which a
read-only ``status`` would pay for two ``docker`` calls, and which ``up`` would pay before it
could start its ``compose config`` calls. So the prefix is built here, by the same rules
(``python_on_whales.client_config.ClientConfig.docker_cmd`` / ``docker_compose_cmd``, 0.81):
the commands start at once and python-on-whales is imported while they run.
``tests/unit/test_dockercmd.py`` holds the two to the same output for every option.
"""

from __future__ import annotations

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


def compose_prefix(options: DockerOptions, project: Project,
                   files: Sequence[Path] = ()) -> list[str]:
    """``docker compose`` with the project's files, profiles, env files, name and directory."""
    words = [*docker_prefix(options), "compose"]
    for path in files or project.files:
        words += ["--file", str(path)]
    for profile in project.profiles:
        words += ["--profile", profile]
    for env_file in project.env_files:
        words += ["--env-file", str(env_file)]
    words += ["--project-name", project.name, "--project-directory", str(project.directory)]
    return words
