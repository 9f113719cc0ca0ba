"""Issue 5: property tests for the plugin's global-flag splitter (moved out of
``test_fuzz.py``, which keeps the readers and writers of the store).

``split_argv`` on arbitrary argv lists (only ``UsageError``), and on argv built from every kind
of docker and compose global with arbitrary values: the globals are found and the words after
``rollback`` come back exactly.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from compose_rollback.plugin import (
    COMPOSE_BOOL_FLAGS,
    COMPOSE_VALUE_FLAGS,
    DOCKER_BOOL_FLAGS,
    DOCKER_VALUE_FLAGS,
    UsageError,
    split_argv,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_word = st.one_of(
    st.sampled_from(["compose", "rollback", "up", "-f", "--file", "-p", "-H", "--host", "=",
                     "--", "-", "--dry-run", "-v", "-fx", "--file=", "--tls", "-D"]),
    st.text(max_size=12))


@FUZZ
@given(argv=st.lists(_word, max_size=10), as_plugin=st.booleans())
def test_split_argv_only_returns_or_raises_usage_error(argv: list[str], as_plugin: bool) -> None:
    try:
        inv = split_argv(argv, as_plugin=as_plugin)
    except UsageError:
        return
    assert inv.args == argv[len(argv) - len(inv.args):]  # always a suffix, never rewritten
    assert inv.prog in ("compose-rollback", "docker compose rollback", "docker rollback")


@st.composite
def _globals(draw: st.DrawFn, values: dict[str, str], bools: dict[str, str],
             ) -> tuple[list[str], dict[str, Any]]:
    """Arbitrary global flags in every spelling, and what the splitter must make of them."""
    argv: list[str] = []
    expect: dict[str, Any] = {}
    lists = {"files", "env_files", "profiles"}
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        if draw(st.booleans()):
            flag = draw(st.sampled_from(sorted(values)))
            value = draw(st.text(max_size=10))
            long = flag.startswith("--")
            spelling = draw(st.sampled_from(["separate", "attached"]))
            if spelling == "attached" and long:
                argv.append(f"{flag}={value}")
            elif spelling == "attached" and value and not value.startswith("="):
                argv.append(f"{flag}{value}")
            else:
                argv += [flag, value]
            key = values[flag]
            if key in lists:
                expect.setdefault(key, []).append(value)
            elif key:
                expect[key] = value
        else:
            flag = draw(st.sampled_from(sorted(bools)))
            argv.append(flag)
            if bools[flag]:
                expect[bools[flag]] = True
    return argv, expect


@FUZZ
@given(docker=_globals(DOCKER_VALUE_FLAGS, DOCKER_BOOL_FLAGS),
       compose=_globals(COMPOSE_VALUE_FLAGS, COMPOSE_BOOL_FLAGS),
       rest=st.lists(_word, max_size=8), through=st.sampled_from(["shim", "plugin", "alone"]))
@example(docker=([], {}), compose=(["-p", "rollback"], {"project_name": "rollback"}),
         rest=["rollback", "-f", "x"], through="shim")
@example(docker=(["--context", "compose"], {"context": "compose"}), compose=([], {}),
         rest=["compose", "rollback"], through="shim")
def test_split_argv_finds_every_global_and_keeps_the_rest_exactly(
    docker: tuple[list[str], dict[str, Any]], compose: tuple[list[str], dict[str, Any]],
    rest: list[str], through: str,
) -> None:
    docker_argv, docker_expect = docker
    compose_argv, compose_expect = compose
    if through == "shim":
        argv = [*docker_argv, "compose", *compose_argv, "rollback", *rest]
    elif through == "plugin":
        argv, compose_expect = [*docker_argv, "rollback", *rest], {}
    else:
        # Standalone: the command must be a word that is not a flag for the split to end.
        rest = ["history", *rest]
        argv, docker_expect = [*compose_argv, *rest], {}
    inv = split_argv(argv, as_plugin=through != "alone")
    assert inv.args == rest
    assert inv.docker == docker_expect
    assert inv.compose == compose_expect


@pytest.mark.parametrize("argv", [["compose", "-p"], ["--host"], ["compose", "--file"],
                                  ["-c"], ["compose", "--profile"]])
def test_split_argv_flag_without_value_is_a_usage_error(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        split_argv(argv, as_plugin=True)
