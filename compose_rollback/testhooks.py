"""Test-only kill points: die by SIGKILL at an exact journal step. Off unless the variable is set.

``COMPOSE_ROLLBACK_TEST_KILL_AT=<before|after>:<step>[#<n>][:group]`` makes the process kill
itself right before or right after it writes the n-th (default: first) journal record of
``step`` (``begin``, ``recorded``, ``apply``, ``compose``, ``gate``, ``restore``, ``end``);
with ``:group``, its whole process group when it leads one (never a group it merely belongs
to, such as the shell's). The kill tests use it so that each kill lands on its step whatever
the machine's speed, instead of sleeping and hoping. Not a user setting: it is not documented
with the others, and nothing but a test sets it.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable
from typing import Any, TypeVar, cast

VARIABLE = "COMPOSE_ROLLBACK_TEST_KILL_AT"

Write = TypeVar("Write", bound=Callable[..., None])

_seen: dict[str, int] = {}  # journal records written by this process, by step


def kill_point(write: Write) -> Write:
    """Wrap ``Journal.write`` with the test-only kill point (a no-op when the variable is unset)."""

    @functools.wraps(write)
    def wrapper(self: object, step: str, **data: Any) -> None:
        spec = os.environ.get(VARIABLE)
        if not spec:
            return write(self, step, **data)
        _seen[step] = _seen.get(step, 0) + 1
        _maybe_die(spec, "before", step)
        write(self, step, **data)
        _maybe_die(spec, "after", step)
        return None

    return cast(Write, wrapper)


def _maybe_die(spec: str, when: str, step: str) -> None:
    at, _, rest = spec.partition(":")
    target, _, group = rest.partition(":")
    name, _, nth = target.partition("#")
    if (at, name) != (when, step) or _seen[step] != int(nth or 1):
        return
    if group == "group" and os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
