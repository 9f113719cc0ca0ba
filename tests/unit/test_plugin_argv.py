"""Splitting the plugin argv into docker globals, compose globals and our arguments."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compose_rollback.plugin import UsageError, main, split_argv


def test_through_the_compose_shim_with_every_kind_of_global() -> None:
    inv = split_argv(
        ["--context", "default", "-H", "unix:///x.sock", "compose", "-f", "a.yaml",
         "--file=b.yaml", "-fc.yaml", "-p", "shop", "--env-file", "prod.env", "--profile",
         "web", "--project-directory", "/srv", "rollback", "up", "web", "-m", "release"],
        as_plugin=True)
    assert inv.prog == "docker compose rollback"
    assert inv.docker == {"context": "default", "host": "unix:///x.sock"}
    assert inv.compose["files"] == ["a.yaml", "b.yaml", "c.yaml"]
    assert inv.compose["project_name"] == "shop"
    assert inv.compose["env_files"] == ["prod.env"]
    assert inv.compose["profiles"] == ["web"]
    assert inv.compose["project_directory"] == "/srv"
    assert inv.args == ["up", "web", "-m", "release"]


def test_project_named_rollback_is_a_flag_value_not_our_command() -> None:
    inv = split_argv(["compose", "-p", "rollback", "rollback", "history"], as_plugin=True)
    assert inv.compose["project_name"] == "rollback"
    assert inv.args == ["history"]


def test_top_level_docker_rollback_plugin() -> None:
    inv = split_argv(["--config", "/tmp/cfg", "rollback", "status", "--json"], as_plugin=True)
    assert inv.prog == "docker rollback"
    assert inv.docker == {"config": "/tmp/cfg"}
    assert inv.args == ["status", "--json"]


def test_standalone_takes_compose_globals_then_the_command() -> None:
    inv = split_argv(["-p", "shop", "up", "-m", "compose rollback fix"], as_plugin=False)
    assert inv.compose == {"project_name": "shop"}
    assert inv.args == ["up", "-m", "compose rollback fix"]


def test_compose_dry_run_global_is_kept() -> None:
    inv = split_argv(["compose", "--dry-run", "rollback", "up"], as_plugin=True)
    assert inv.compose["dry_run"] is True


def test_flag_without_value_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        split_argv(["compose", "-f"], as_plugin=True)


def test_metadata_is_json_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docker-cli-plugin-metadata"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["SchemaVersion"] == "0.1.0"
    assert data["Vendor"] == "compose-rollback"


_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._/-", min_size=1,
                  max_size=12).filter(lambda v: not v.startswith("-"))


@given(files=st.lists(_values, max_size=4), name=st.one_of(st.none(), _values),
       profiles=st.lists(_values, max_size=3),
       args=st.lists(st.sampled_from(["up", "web", "--json", "-m", "rollback", "x"]),
                     max_size=5))
def test_globals_round_trip(files: list[str], name: str | None, profiles: list[str],
                            args: list[str]) -> None:
    argv = ["compose"]
    for f in files:
        argv += ["-f", f]
    if name is not None:
        argv += ["--project-name", name]
    for p in profiles:
        argv.append(f"--profile={p}")
    inv = split_argv([*argv, "rollback", *args], as_plugin=True)
    assert inv.compose.get("files", []) == files
    assert inv.compose.get("project_name") == name
    assert inv.compose.get("profiles", []) == profiles
    assert inv.args == args
