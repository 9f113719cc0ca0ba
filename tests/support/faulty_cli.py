"""Our CLI with one engine method made to raise: ``python faulty_cli.py METHOD=ERROR[xN] ARGS``.

A test-only fault at the one seam (``Engine``), for errors no real setting provokes on demand:
``events=OSError`` raises ``OSError(EMFILE)`` from every call of ``Engine.events``,
``events=OSErrorx1`` from the first call only, ``tag=ValueError`` from ``Engine.tag``. The rest
is the real CLI against the real engine, exiting the way ``python -m compose_rollback`` does.
"""

from __future__ import annotations

import errno
import functools
import re
import sys
from collections.abc import Callable
from typing import Any

from compose_rollback import engine
from compose_rollback.plugin import main

ERRORS: dict[str, Callable[[], Exception]] = {
    "OSError": lambda: OSError(errno.EMFILE, "Too many open files (injected by the test)"),
    "ValueError": lambda: ValueError("injected by the test"),
}


def inject(spec: str) -> None:
    match = re.fullmatch(r"(\w+)=(\w+?)(?:x(\d+))?", spec)
    if match is None:
        raise SystemExit(f"faulty_cli: bad fault {spec!r}")
    name, error, times = match[1], match[2], int(match[3]) if match[3] else None
    original = getattr(engine.Engine, name)
    calls = [0]

    @functools.wraps(original)
    def faulty(self: engine.Engine, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if times is None or calls[0] <= times:
            raise ERRORS[error]()
        return original(self, *args, **kwargs)

    setattr(engine.Engine, name, faulty)


if __name__ == "__main__":
    inject(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
