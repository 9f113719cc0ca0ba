"""The JSON Schema of every command's ``--json`` output (README, "JSON output").

One file, ``output.schema.json``, holds a definition per command under ``$defs`` and the
shapes they share (a revision, a rollout step), so a new command or key is added in one place.
``SCHEMA_VERSION`` is the major version every document carries as ``schema_version``: new keys
keep it, a key removed, renamed or retyped bumps it (and the file's ``$id`` with it).
"""

from __future__ import annotations

import json
from typing import Any

from compose_rollback.errors import BadInput

SCHEMA_VERSION = 1
FILE = "output.schema.json"
#: The commands with ``--json``; each has ``$defs/<command>`` (a unit test holds the CLI to it).
COMMANDS = ("up", "revert", "watch", "history", "status", "diff", "pin", "prune", "version")


def document() -> dict[str, Any]:
    """The whole schema file, as installed with the package."""
    from importlib.resources import files  # on use: every --json document needs only the version

    data: dict[str, Any] = json.loads(files(__package__).joinpath(FILE).read_text("utf-8"))
    return data


def for_command(command: str) -> dict[str, Any]:
    """A standalone schema of one command's output (its definition plus the shared ones)."""
    if command not in COMMANDS:
        raise BadInput(f"no --json output named {command!r}",
                       hint=f"name one of: {', '.join(COMMANDS)}")
    whole = document()
    return {
        "$schema": whole["$schema"],
        "$id": f"{whole['$id']}:{command}",
        "title": f"compose-rollback {command} --json, schema_version {SCHEMA_VERSION}",
        "$ref": f"#/$defs/{command}",
        "$defs": whole["$defs"],
    }
