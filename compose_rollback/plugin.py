"""Docker CLI plugin entry: metadata, docker/compose global flags, then the CLI.

The docker CLI runs a plugin with its raw argv: ``[docker globals] compose [compose globals]
rollback …`` through our compose shim, or ``[docker globals] rollback …`` as the top-level
``docker-rollback`` plugin. Standalone, ``compose-rollback [compose globals] COMMAND`` works too.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from compose_rollback import __version__

METADATA = {
    "SchemaVersion": "0.1.0",
    "Vendor": "compose-rollback",
    "Version": __version__,
    "ShortDescription": "Pinned, gated, revertible Compose deploys",
}

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


class UsageError(Exception):
    pass


@dataclass
class Invocation:
    """The argv of one run, split into docker globals, compose globals and our own args."""

    docker: dict[str, str | bool] = field(default_factory=dict)
    compose: dict[str, str | list[str] | bool] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    prog: str = "compose-rollback"


def _take(argv: Sequence[str], i: int, values: dict[str, str], bools: dict[str, str],
          into: dict[str, object]) -> int:
    """Consume one global flag at ``argv[i]``; return the index after it (or ``i`` if none)."""
    word = argv[i]
    name, eq, inline = word.partition("=")
    if name in values and name.startswith("--"):
        if eq:
            value = inline
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 1
        else:
            raise UsageError(f"flag {name} needs a value")
        _store(into, values[name], value)
        return i + 1
    if name in bools and not eq:
        if bools[name]:
            into[bools[name]] = True
        return i + 1
    short = word[:2]
    if short in values and not short.startswith("--") and len(short) == 2 and short[1] != "-":
        if len(word) > 2:
            _store(into, values[short], word[2:].lstrip("="))
            return i + 1
        if i + 1 >= len(argv):
            raise UsageError(f"flag {short} needs a value")
        _store(into, values[short], argv[i + 1])
        return i + 2
    return i


def _store(into: dict[str, object], key: str, value: str) -> None:
    if not key:
        return
    if key in _LISTS:
        existing = into.setdefault(key, [])
        assert isinstance(existing, list)
        existing.append(value)
    else:
        into[key] = value


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
            nxt = _take(words, i, DOCKER_VALUE_FLAGS, DOCKER_BOOL_FLAGS, docker)
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
        nxt = _take(words, i, COMPOSE_VALUE_FLAGS, COMPOSE_BOOL_FLAGS, compose)
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


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["docker-cli-plugin-metadata"]:
        print(json.dumps(METADATA))
        return 0
    # The docker CLI passes these to us; children we start must not inherit them.
    socket_name = os.environ.pop("DOCKER_CLI_PLUGIN_SOCKET", None)
    as_plugin = os.environ.pop("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", None) is not None
    try:
        invocation = split_argv(words, as_plugin=as_plugin)
    except UsageError as error:
        print(f"compose-rollback: {error}", file=sys.stderr)
        return 2
    _cancel_on_signals(socket_name)
    from compose_rollback.cli import run

    return run(invocation)


def _cancel_on_signals(socket_name: str | None) -> None:
    """SIGTERM, and EOF on the docker CLI's plugin socket, cancel like Ctrl-C does.

    Off a TTY the docker CLI does not forward Ctrl-C to a plugin: it closes the socket named
    by ``DOCKER_CLI_PLUGIN_SOCKET`` instead. Either way the deploy sees a KeyboardInterrupt
    and puts the last good revision back.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if not socket_name:
        return
    import socket

    address = "\0" + socket_name[1:] if socket_name.startswith("@") else socket_name
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(address)
    except OSError:
        return

    def watch() -> None:
        try:
            while conn.recv(4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True, name="plugin socket").start()
