"""Split a plugin argv into docker globals, compose globals and our command's arguments.

The docker CLI runs a plugin with its raw argv: ``[docker globals] compose [compose globals]
rollback …`` through our compose shim, or ``[docker globals] rollback …`` as the top-level
``docker-rollback`` plugin. Standalone, ``compose-rollback [compose globals] COMMAND`` works
too. Flags are read the way docker and compose read them (spf13/pflag): ``--flag value``,
``--flag=value``, ``-fvalue``, ``-f=value``, booleans as ``--flag`` or ``--flag=false``, and
short flags combined, booleans first (``-Dc ctx`` is ``-D -c ctx``, ``-vf x`` is ``-v -f x``).
The shim (``shim/docker-compose``) must find the same word ``rollback``: the integration test
``test_shim_flags.py`` runs both through the real docker CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from compose_rollback.errors import UsageError

DOCKER_VALUE_FLAGS = {"--config": "config", "-c": "context", "--context": "context",
                      "-H": "host", "--host": "host", "-l": "log_level",
                      "--log-level": "log_level", "--tlscacert": "tlscacert",
                      "--tlscert": "tlscert", "--tlskey": "tlskey"}
DOCKER_BOOL_FLAGS = {"--tls": "tls", "--tlsverify": "tlsverify", "-D": "", "--debug": ""}
COMPOSE_VALUE_FLAGS = {"-f": "files", "--file": "files", "-p": "project_name",
                       "--project-name": "project_name", "--project-directory":
                       "project_directory", "--workdir": "project_directory",
                       "--env-file": "env_files", "--profile": "profiles", "--ansi": "ansi",
                       "--progress": "progress", "--parallel": ""}
COMPOSE_BOOL_FLAGS = {"--compatibility": "", "--dry-run": "dry_run", "--all-resources": "",
                      "--no-ansi": "", "--verbose": "", "-v": "", "--version": ""}
_LISTS = {"files", "env_files", "profiles"}
# strconv.ParseBool, which pflag uses for ``--flag=value`` of a boolean flag
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


@dataclass
class Invocation:
    """The argv of one run, split into docker globals, compose globals and our own args."""

    docker: dict[str, str | bool] = field(default_factory=dict)
    compose: dict[str, str | list[str] | bool] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    prog: str = "compose-rollback"


@dataclass(frozen=True)
class _Flags:
    """The global flags of one program: those that take a value, and the booleans."""

    values: dict[str, str]
    bools: dict[str, str]


def _boolean(text: str, flag: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"flag {flag} takes true or false, got {text!r}", flag=flag)


def _take(argv: Sequence[str], i: int, flags: _Flags, into: dict[str, object]) -> int:
    """Consume the global flag(s) at ``argv[i]``; return the index after them (``i``: none)."""
    word = argv[i]
    if word.startswith("--"):
        return _take_long(argv, i, flags, into)
    if word.startswith("-") and len(word) > 1:
        return _take_short(argv, i, flags, into)
    return i


def _take_long(argv: Sequence[str], i: int, flags: _Flags, into: dict[str, object]) -> int:
    name, eq, inline = argv[i].partition("=")
    if name in flags.values:
        if eq:
            value = inline
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 1
        else:
            raise UsageError(f"flag {name} needs a value", flag=name)
        _store(into, flags.values[name], value)
        return i + 1
    if name in flags.bools:
        _store(into, flags.bools[name], _boolean(inline, name) if eq else True)
        return i + 1
    return i


def _take_short(argv: Sequence[str], i: int, flags: _Flags, into: dict[str, object]) -> int:
    """A group of short flags: booleans, then at most one that takes a value (pflag's rule:
    the rest of the word is that value, or the next word when the flag ends the word)."""
    word, nxt = argv[i], i + 1
    found: list[tuple[str, object]] = []
    j = 1
    while j < len(word):
        flag, rest = f"-{word[j]}", word[j + 1:]
        if flag in flags.bools:
            if len(rest) > 1 and rest[0] == "=":
                found.append((flags.bools[flag], _boolean(rest[1:], flag)))
                break
            found.append((flags.bools[flag], True))
            j += 1
            continue
        if flag not in flags.values:
            return i  # not a group of this level's flags: the caller stops here
        if len(rest) > 1 and rest[0] == "=":
            value = rest[1:]
        elif rest:
            value = rest
        elif nxt < len(argv):
            value, nxt = argv[nxt], nxt + 1
        else:
            raise UsageError(f"flag {flag} needs a value", flag=flag)
        found.append((flags.values[flag], value))
        break
    for key, setting in found:
        _store(into, key, setting)
    return nxt


def _store(into: dict[str, object], key: str, value: object) -> None:
    if not key:
        return
    if key in _LISTS:
        existing = into.setdefault(key, [])
        assert isinstance(existing, list)
        existing.append(value)
    else:
        into[key] = value


_DOCKER = _Flags(DOCKER_VALUE_FLAGS, DOCKER_BOOL_FLAGS)
_COMPOSE = _Flags(COMPOSE_VALUE_FLAGS, COMPOSE_BOOL_FLAGS)


def split_argv(argv: Sequence[str], *, as_plugin: bool) -> Invocation:
    """Split an argv into docker globals, compose globals and our command's args.

    ``as_plugin``: the docker CLI started us, so the argv begins with docker's global flags
    and the word ``compose`` (through the shim) or ``rollback`` (as ``docker-rollback``).
    """
    inv = Invocation()
    docker: dict[str, object] = {}
    compose: dict[str, object] = {}
    i = 0
    words = list(argv)
    if as_plugin:
        while i < len(words) and words[i] not in ("compose", "rollback"):
            nxt = _take(words, i, _DOCKER, docker)
            if nxt == i:
                break
            i = nxt
        if i < len(words) and words[i] == "compose":
            i += 1
            inv.prog = "docker compose rollback"
        else:
            inv.prog = "docker rollback"
    while i < len(words):
        if words[i] == "--":
            i += 1
            break
        nxt = _take(words, i, _COMPOSE, compose)
        if nxt == i:
            break
        i = nxt
    if as_plugin:
        if i < len(words) and words[i] == "rollback":
            i += 1
        elif inv.prog == "docker compose rollback":
            raise UsageError("expected the word 'rollback' after compose's global flags")
    inv.docker = {k: v for k, v in docker.items() if isinstance(v, str | bool)}
    inv.compose = {k: v for k, v in compose.items() if isinstance(v, str | list | bool)}
    inv.args = words[i:]
    return inv


def docker_environment(docker: dict[str, str | bool]) -> dict[str, str | None]:
    """Docker's global flags as the environment that means the same (``None``: unset it).

    For the commands we start that are not our docker calls (hooks): a hook that runs
    ``docker`` must reach the engine the user named. ``-H`` is ``DOCKER_HOST`` and
    ``--context`` is ``DOCKER_CONTEXT``; each clears the other, as the flag overrides the
    variable in docker itself. ``--config`` is ``DOCKER_CONFIG``.
    """
    env: dict[str, str | None] = {}
    host, context, config = docker.get("host"), docker.get("context"), docker.get("config")
    if isinstance(host, str):
        env.update(DOCKER_HOST=host, DOCKER_CONTEXT=None)
    elif isinstance(context, str):
        env.update(DOCKER_CONTEXT=context, DOCKER_HOST=None)
    if isinstance(config, str):
        env["DOCKER_CONFIG"] = config
    return env
