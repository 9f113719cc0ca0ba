"""Docker CLI plugin entry: the metadata answer, the plugin's environment, then the CLI.

The argv is split in ``argv`` (docker and compose global flags); the command runs in
``quick`` (no option parser needed) or ``cli``, and ``runner`` alone turns what happened
into an exit code. This module imports the CLI only when a command runs: the docker CLI asks
every plugin for its metadata on each invocation.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Sequence

from compose_rollback.deferred import defer

# ``dataclasses`` imports ``inspect`` for one call, made only for a class without a docstring
# (ours all have one), and it costs ~7 ms of the ~70 a read-only command takes (``ast``, ``dis``,
# ``tokenize``...): it loads on first use. ``main`` loads it before handing a command to typer,
# which uses it at once, so that no thread ``up`` starts meets it half-loaded.
defer("inspect")

# These three after the deferral above: argv imports dataclasses.
from compose_rollback import __version__  # noqa: E402
from compose_rollback.argv import (  # noqa: E402
    COMPOSE_BOOL_FLAGS,
    COMPOSE_VALUE_FLAGS,
    DOCKER_BOOL_FLAGS,
    DOCKER_VALUE_FLAGS,
    Invocation,
    split_argv,
)
from compose_rollback.errors import UsageError  # noqa: E402

__all__ = ["COMPOSE_BOOL_FLAGS", "COMPOSE_VALUE_FLAGS", "DOCKER_BOOL_FLAGS",
           "DOCKER_VALUE_FLAGS", "METADATA", "Invocation", "UsageError", "main", "split_argv"]

METADATA = {
    "SchemaVersion": "0.1.0",
    "Vendor": "compose-rollback",
    "Version": __version__,
    "ShortDescription": "Pinned, gated, revertible Compose deploys",
}


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["docker-cli-plugin-metadata"]:
        print(json.dumps(METADATA))
        return 0  # the plugin protocol's answer, not a command: no outcome to map
    if words[:1] in (["__complete"], ["__completeNoDesc"]):  # shell completion, on every TAB
        from compose_rollback.completion import answer
        from compose_rollback.project import working_directory

        sys.stdout.write(answer(words, environ=os.environ, cwd=working_directory(os.environ)))
        return 0
    # The docker CLI passes these to us; children we start must not inherit them.
    socket_name = os.environ.pop("DOCKER_CLI_PLUGIN_SOCKET", None)
    as_plugin = os.environ.pop("DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", None) is not None
    _cancel_on_signals(socket_name)
    from compose_rollback import quick
    from compose_rollback.runner import execute, invocation_of

    invocation = invocation_of(words, as_plugin=as_plugin)
    if isinstance(invocation, int):
        return invocation
    known = quick.answer(invocation.args)  # answered without the option parser: typer's ~50 ms
    if known is not None:
        return execute(invocation, known)
    import inspect

    inspect.signature  # noqa: B018  (loads it now, in this thread: see defer above)
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

    import threading

    threading.Thread(target=watch, daemon=True, name="plugin socket").start()
