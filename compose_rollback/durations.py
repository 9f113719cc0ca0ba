"""Durations as compose writes them (``1m30s``, ``500ms``), for settings and flags alike.

A module of its own so that ``settings`` and ``gates.specs`` both use it without importing
each other.
"""

from __future__ import annotations

import re

from compose_rollback.errors import SettingsError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object, *, path: str) -> float:
    """Parse a compose duration (``1m30s``, ``500ms``, ``10s``) or a number of seconds."""
    if isinstance(value, bool):
        raise SettingsError(path, f"expected a duration like 10s or 1m30s, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise SettingsError(path, "a duration cannot be negative")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(path, f"expected a duration like 10s or 1m30s, got {value!r}")
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise SettingsError(path, f"expected a duration like 10s or 1m30s, got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    if minutes and secs:
        return f"{int(minutes)}m{secs:g}s"
    if minutes:
        return f"{int(minutes)}m"
    return f"{secs:g}s"
