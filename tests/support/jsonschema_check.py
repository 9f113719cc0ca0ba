"""Hold ``--json`` output to its schema (``compose_rollback/schema/output.schema.json``).

The published schema lets a consumer meet keys it does not know (new keys are additive). The
tests are stricter: every key an object has must be in the schema, so nothing reaches a
pipeline undocumented. A key the schema lacks fails here with the file to add it to.

``ComposeProject.run`` checks every ``--json`` command that exits 0, 1 or 3 (the exit codes that
come with a result), so each integration test that asks for ``--json`` also checks its shape.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Sequence
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from compose_rollback import schema

SCHEMA_FILE = "compose_rollback/schema/output.schema.json"
#: The exit codes whose stdout is the command's JSON document (the others print nothing).
RESULT_CODES = (0, 1, 3)


def strict(node: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists its
    properties and says nothing of others (maps such as ``pins`` say what their values are)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node \
            and node.get("type") == "object":
        out["additionalProperties"] = False
    return out


@cache
def _validator(command: str, *, strictly: bool) -> Draft202012Validator:
    found = schema.for_command(command)
    return Draft202012Validator(strict(copy.deepcopy(found)) if strictly else found)


def errors(command: str, document: Any, *, strictly: bool = True) -> list[str]:
    """Every way ``document`` breaks ``command``'s schema, as ``path: message`` lines."""
    found = _validator(command, strictly=strictly).iter_errors(document)
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                  for e in found)


def assert_valid(command: str, document: Any, *, strictly: bool = True) -> None:
    """``document`` follows ``command``'s schema; else an error naming each problem."""
    problems = errors(command, document, strictly=strictly)
    assert not problems, (
        f"`{command} --json` breaks its schema ({SCHEMA_FILE}; a new key is documented "
        "there, README \"JSON output\"):\n  " + "\n  ".join(problems)
        + f"\ndocument: {json.dumps(document, indent=1)[:3000]}")


def command_of(args: Sequence[str]) -> str | None:
    """The subcommand of a CLI argv (the first word that is not an option), when it has a
    schema."""
    word = next((a for a in args if not a.startswith("-")), None)
    return word if word in schema.COMMANDS else None


def check_output(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
    """For a ``--json`` run that came with a result: stdout is one valid document."""
    command = command_of(args)
    if "--json" not in args or command is None or result.returncode not in RESULT_CODES:
        return
    try:
        document = json.loads(result.stdout)
    except ValueError as error:
        raise AssertionError(f"`{command} --json` exited {result.returncode} without a JSON "
                             f"document ({error}):\nstdout:\n{result.stdout}\n"
                             f"stderr:\n{result.stderr}") from None
    assert_valid(command, document)
