"""Every command's ``--json`` output against its schema, on the real engine (issue 13).

One project lives through the documents a pipeline sees: a dry run, good deploys (a registry
pin and a local one, a start-first step), a failed one rolled back, a revert, then history,
status, diff, pin, prune and version; a stack on Swarm for ``status``'s tasks; and the
installed plugin printing the schema it ships. Each document is checked strictly
(``support.jsonschema_check``: no key the schema does not document).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.compose_project import ComposeProject
from support.installed import PluginUser
from support.jsonschema_check import assert_valid
from support.registry import Registry
from support.swarm import Stack
from support.testimages import AppImages

pytestmark = pytest.mark.docker

#: A short soak: these tests are about the documents, not about how long a release stays healthy.
FAST = ("--min-healthy", "200ms", "--timeout", "60s")


def _compose(web: str, worker: str, *, mode: str = "one") -> str:
    return (
        "services:\n"
        f"  web:\n    image: {web}\n    environment: {{GREETING: {mode}}}\n"
        "    deploy: {update_config: {order: start-first}}\n"
        f"  worker:\n    image: {worker}\n    pull_policy: never\n"
    )


def _json(project: ComposeProject, *args: str, code: int = 0) -> Any:
    """``args --json``, exiting ``code``; its document, checked against the schema."""
    result = project.run(*args, "--json", check=code, timeout=240)
    document = json.loads(result.stdout)
    assert_valid(args[0], document)
    return document


def test_every_command_prints_what_its_schema_says(
        project: ComposeProject, images: AppImages, registry: Registry) -> None:
    repo = registry.new_repo()
    good = images.push("healthy", repo, "v1")
    worker = images.local("healthy")
    project.write(_compose(registry.ref(repo, "v1"), worker))

    dry = _json(project, "up", "--dry-run", *FAST)
    assert (dry["outcome"], dry["exit_code"], dry["revision"]) == ("dry_run", 0, 1)
    assert dry["overlay"] and dry["would_build"] == [] and dry["would_pull"] == []

    first = _json(project, "up", "-m", "v1", *FAST)
    assert (first["schema_version"], first["outcome"], first["revision"]) == (1, "deployed", 1)
    project.write(_compose(registry.ref(repo, "v1"), worker, mode="two"))
    second = _json(project, "up", "-m", "v1 again", *FAST)
    assert second["revision"] == 2
    steps = {s["services"][0]: (s["strategy"], s["outcome"]) for s in second["steps"]}
    assert steps["web"] == ("start-first", "passed") and second["steps"][0]["beside"] == 1

    images.push("unhealthy", repo, "v2")
    project.write(_compose(registry.ref(repo, "v2"), worker, mode="two"))
    failed = _json(project, "up", "-m", "v2", *FAST, code=1)
    assert (failed["outcome"], failed["exit_code"], failed["restored"]) == ("rolled_back", 1, 2)
    assert failed["failure"]["service"] == "web"
    assert (failed["steps"][0]["direction"], failed["steps"][0]["outcome"]) == (
        "forward", "failed")
    assert {s["outcome"] for s in failed["steps"] if s["direction"] == "back"} == {"passed"}

    back = _json(project, "revert", "--to", "1", *FAST)
    assert (back["outcome"], back["revision"]) == ("deployed", 4)

    history = _json(project, "history")
    assert [(r["number"], r["status"], r["kind"]) for r in history] == [
        (1, "superseded", "up"), (2, "superseded", "up"), (3, "failed", "up"),
        (4, "deployed", "revert")]
    assert {r["schema_version"] for r in history} == {1}
    pins = history[0]["pins"]
    assert pins["web"]["image"].endswith(good.split("@", 1)[1]) and not pins["web"]["local"]
    assert pins["worker"]["local"] is True

    status = _json(project, "status")
    assert (status["current"], status["drift"]) == (4, False)
    assert sorted(s["service"] for s in status["services"]) == ["web", "worker"]

    changed = _json(project, "diff", "1", "2")
    assert {"path": "environment.GREETING", "before": "one", "after": "two"} in \
        changed["services"][0]["changes"]
    assert _json(project, "diff")["from"] == 2

    pinned = _json(project, "pin", "-m", "adopted")
    assert (pinned["number"], pinned["kind"], pinned["schema_version"]) == (5, "pin", 1)
    assert _json(project, "prune", "--keep", "2") == {"schema_version": 1, "pruned": [1, 2, 3]}
    assert _json(project, "version")["compose"]


def test_bad_input_under_json_prints_no_document(project: ComposeProject) -> None:
    """Exit 2 (and 4, 5): nothing happened, so there is no result; stdout stays empty, the one
    line on stderr says why (README, JSON output)."""
    project.write("services:\n  web:\n    image: crt-never-pulled:v1\n")
    result = project.run("up", "--pull", "sometimes", "--json", check=2)
    assert result.stdout == ""
    assert "--pull" in result.stderr


def test_status_of_a_stack_follows_the_schema(
        project: ComposeProject, stack: Stack, images: AppImages, registry: Registry) -> None:
    repo = registry.new_repo()
    images.push("healthy", repo, "live")
    project.write(
        "services:\n  web:\n"
        f"    image: {registry.ref(repo, 'live')}\n"
        "    deploy: {replicas: 1, update_config: {order: start-first, monitor: 2s}}\n"
        "x-rollback: {orchestrator: swarm}\n")
    deployed = _json(project, "up", "--min-healthy", "2s", "--timeout", "90s")
    assert deployed["outcome"] == "deployed"
    status = _json(project, "status")
    web = status["services"][0]
    assert (web["desired"], status["drift"]) == (1, False)
    assert {"task", "image"} <= set(web["containers"][0])


def test_the_installed_plugin_prints_the_schema_it_ships(
        plugin_user: PluginUser, tmp_path: Path) -> None:
    """The schema file is package data: in the wheel pip installs (the run's real install.sh,
    ``support.installed``), found by the plugin."""
    out = plugin_user.docker("compose", "rollback", "schema", "status", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["$ref"] == "#/$defs/status" and "status" in found["$defs"]
    files = list((plugin_user.cr_home / "venv").rglob(
        "compose_rollback/schema/output.schema.json"))
    assert len(files) == 1, files
