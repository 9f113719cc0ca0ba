"""The ``--json`` output schema: a valid draft 2020-12 schema, one definition per command with
``--json``, strict enough to reject a wrong document, and matched by what the renderers build.

The integration tests hold the real commands' output to it (``support.jsonschema_check``,
through ``ComposeProject.run``, and ``tests/integration/test_json_schema.py``).
"""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import tomllib
import typer
from jsonschema import Draft202012Validator

from compose_rollback import cli, render, schema
from compose_rollback.argv import Invocation
from compose_rollback.commands import (
    DiffReport,
    ServiceDiff,
    ServiceStatus,
    StatusReport,
    Versions,
)
from compose_rollback.deploy import Change, DeployResult
from compose_rollback.gates.container import GateFailure
from compose_rollback.pins import Pin
from compose_rollback.revisions import Revision
from compose_rollback.rollout.config import UpdateConfig
from compose_rollback.rollout.plan import Step
from compose_rollback.rollout.report import StepNotes, step_report
from support.jsonschema_check import assert_valid, errors

ROOT = Path(__file__).parents[2]
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"127.0.0.1:5000/app:v1@{DIGEST}"


def _revision(number: int = 1, **changes: Any) -> Revision:
    pin = Pin("web", "127.0.0.1:5000/app:v1", IMAGE, DIGEST, local=False,
              retention="127.0.0.1:5000/app:rollback-p-abababababab")
    fields: dict[str, Any] = {
        "number": number, "status": "deployed", "kind": "up", "created": "2026-12-01T10:00:00Z",
        "file": f"revisions/{number:04d}.yaml", "sha256": "0" * 64, "pins": {"web": pin},
        "message": "v1", "user": "ci", "host": "build-1", "finished": "2026-12-01T10:00:09Z"}
    return Revision(**{**fields, **changes})


def _steps() -> tuple[Any, ...]:
    canary = Step("canary", ("web",), ("web",), old=("a", "b"), replicas=2,
                  update=UpdateConfig(order="start-first", parallelism=1))
    return (step_report(canary, revision=2, back=False, outcome="failed",
                        notes=StepNotes(canary=1, batches=1, failed_batch=1), reason="web: bad"),
            step_report(Step("stop-first", ("db",), ("db",)), revision=2, back=False,
                        outcome="not_run"),
            step_report(Step("stop-first", ("web",), ("web",)), revision=1, back=True,
                        outcome="passed"))


def _rendered() -> dict[str, list[Any]]:
    """Documents of every command as the CLI renders them (``render.versioned`` included)."""
    failure = GateFailure("web", "p-web-1", "is unhealthy: exit 1", logs="boom\n")
    plan = (Change("web", IMAGE, DIGEST, config_changed=True), Change("db", None, DIGEST, False))
    rolled_back = DeployResult("rolled_back", "revision 2 failed", revision=2, restored=1,
                               failure=failure, plan=plan, steps=_steps())
    dry = DeployResult("dry_run", "dry run", plan=plan, overlay="services: {}\n",
                       actions={"web": "build", "db": "pull"})
    deployed = DeployResult("deployed", "revision 3 deployed and healthy", revision=3,
                            plan=plan)
    unrestored = DeployResult("unrestored", "no good revision", revision=1, failure=failure)
    container = {"container": "p-web-1", "state": "running", "health": None,
                 "image_id": DIGEST}
    task = {**container, "task": "x1", "image": IMAGE, "health": None}
    status = StatusReport("p", _revision(), [
        ServiceStatus("web", IMAGE, DIGEST, [container], []),
        ServiceStatus("db", None, None, [task], ["not in the current revision"], desired=None),
        ServiceStatus("api", IMAGE, DIGEST, [task], [], desired=2)])
    diff = DiffReport(1, 3, [ServiceDiff("web", IMAGE, DIGEST, [
        ("environment.MODE", None, "crash"), ("ports", [1], [2]), ("deploy.replicas", 1, 2)]),
        ServiceDiff("db", None, DIGEST)])
    revisions = [_revision(1, status="superseded"),
                 _revision(2, status="failed", reason="web: bad", restored_to=1),
                 _revision(3, kind="revert", restores=1, services=("web",)),
                 _revision(4, status="pending", finished="", git="0123abc")]
    json_of = {
        "up": [render.deploy_json(r, exit_code=int(cli.exit_code(r)))
               for r in (rolled_back, dry, deployed, unrestored)],
        "history": [[r.to_json() for r in revisions], []],
        "status": [render.status_json(status),
                   render.status_json(StatusReport("p", None, []))],
        "diff": [render.diff_json(diff)],
        "pin": [_revision(5, kind="pin").to_json()],
        "prune": [{"pruned": [1, 2]}, {"pruned": []}],
        "version": [Versions("0.1.0", "2.40.3", "20.10.24").__dict__],
    }
    json_of["revert"] = json_of["up"]
    return {command: [render.versioned(d) for d in docs] for command, docs in json_of.items()}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    assert len(keys) == len(set(keys)), f"a key twice in one object: {keys}"
    return dict(pairs)


def test_the_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    text = files("compose_rollback.schema").joinpath(schema.FILE).read_text("utf-8")
    # A key written twice is legal JSON whose first value silently loses: a definition lost.
    whole = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    Draft202012Validator.check_schema(whole)
    assert whole["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert whole["$id"].endswith(f":{schema.SCHEMA_VERSION}")
    assert whole["$defs"]["schema_version"] == {
        "description": whole["$defs"]["schema_version"]["description"],
        "const": schema.SCHEMA_VERSION}
    for command in schema.COMMANDS:
        Draft202012Validator.check_schema(schema.for_command(command))


def test_every_command_with_json_has_a_definition() -> None:
    group = typer.main.get_command(cli.app)
    with_json = {name for name, command in group.commands.items()  # type: ignore[attr-defined]
                 if any("--json" in p.opts for p in command.params)}
    assert with_json == set(schema.COMMANDS)
    assert set(schema.COMMANDS) <= set(schema.document()["$defs"])


def test_what_the_renderers_build_follows_the_schema_strictly() -> None:
    for command, documents in _rendered().items():
        for document in documents:
            assert_valid(command, document)


@pytest.mark.parametrize(("command", "breakage", "expected"), [
    ("up", lambda d: d.pop("outcome"), "'outcome' is a required property"),
    ("up", lambda d: d.update(revision="2"), "revision: '2' is not of type"),
    ("up", lambda d: d.update(outcome="deployed", exit_code=1), "exit_code: 0 was expected"),
    ("up", lambda d: d["steps"][0].update(direction="sideways"), "steps/0/direction"),
    ("up", lambda d: d["failure"].pop("reason"), "failure"),
    ("status", lambda d: d.update(schema_version=2), "schema_version: 1 was expected"),
    ("status", lambda d: d["services"][0].update(drift="no"), "services/0/drift"),
    ("history", lambda d: d[1]["pins"]["web"].pop("id"), "1/pins/web: 'id' is a required"),
    ("history", lambda d: d[0].pop("schema_version"), "'schema_version' is a required"),
    ("diff", lambda d: d["services"][0]["image"].pop("after"), "services/0/image"),
    ("prune", lambda d: d.update(pruned=["1"]), "pruned/0: '1' is not of type 'integer'"),
    ("version", lambda d: d.pop("engine"), "'engine' is a required property"),
])
def test_a_wrong_document_is_rejected(command: str, breakage: Any, expected: str) -> None:
    document = json.loads(json.dumps(_rendered()[command][0]))
    assert errors(command, document) == []
    breakage(document)
    found = errors(command, document, strictly=False)
    assert any(expected in line for line in found), found
    with pytest.raises(AssertionError, match="breaks its schema"):
        assert_valid(command, document)


def test_unknown_keys_pass_the_published_schema_and_fail_the_strict_check() -> None:
    """Consumers must accept new keys (additive change, same version); our tests name any key
    the schema does not document yet."""
    document = json.loads(json.dumps(_rendered()["up"][0]))
    document["duration"] = 3.5
    document["steps"][0]["started"] = "2026-12-01T10:00:00Z"
    assert errors("up", document, strictly=False) == []
    found = errors("up", document)
    assert "(top): Additional properties are not allowed ('duration' was unexpected)" in found
    assert any(line.startswith("steps/0: ") and "'started'" in line for line in found), found


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.run(Invocation(args=list(args)))
    return code, out.getvalue(), err.getvalue()


def test_the_schema_command_prints_one_command_or_all() -> None:
    code, out, _ = _run("schema", "up")
    assert code == 0
    found = json.loads(out)
    assert found == schema.for_command("up") and found["$ref"] == "#/$defs/up"
    Draft202012Validator(found).validate(_rendered()["up"][0])
    code, out, _ = _run("schema")
    assert (code, json.loads(out)) == (0, schema.document())


def test_the_schema_command_names_the_known_commands_on_a_typo() -> None:
    code, out, err = _run("schema", "statsu")
    assert (code, out) == (2, "")
    assert err.strip() == ("compose-rollback: no --json output named 'statsu'; name one of: "
                           "up, revert, watch, history, status, diff, pin, prune, version")


def test_the_schema_file_is_package_data() -> None:
    """setuptools installs only the package data pyproject names: every file of the package
    that is not Python must be named there, or the installed plugin lacks it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = config["package-data"]
    package = ROOT / "compose_rollback"
    for path in package.rglob("*"):
        if path.is_dir() or path.suffix in (".py", ".pyc") \
                or "__pycache__" in path.parts:
            continue
        owner = ".".join(path.parent.relative_to(ROOT).parts)
        patterns = data.get(owner, [])
        assert any(path.match(p) for p in patterns), f"{path} is not in package-data"


def _readme_examples() -> dict[str, Any]:
    """The documents of README's "JSON output", by the command each one is marked with."""
    text = (ROOT / "README.md").read_text("utf-8")
    found = re.findall(r"<!-- json-example: (\w+) -->\n```json\n(.*?)\n```", text, re.DOTALL)
    return {command: json.loads(body) for command, body in found}


def test_the_readme_examples_follow_the_schema() -> None:
    examples = _readme_examples()
    # revert prints up's shape and pin one revision of history's: the README says so.
    examples["revert"], examples["pin"] = examples.get("up"), examples["history"][0]
    assert set(examples) == set(schema.COMMANDS)
    for command, document in examples.items():
        assert_valid(command, document)
