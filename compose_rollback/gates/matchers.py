"""Alertmanager API v2 matchers (``service="web"``, ``severity=~"critical|page"``), checked
when settings load.

The syntax accepted is what both of Alertmanager's parsers take, so a filter means the same to
0.25 (the classic parser, ``pkg/labels``) and to 0.27+ (the UTF-8 parser, ``matcher/parse``):
a label name ``[A-Za-z_][A-Za-z0-9_]*``, an operator ``=``, ``!=``, ``=~`` or ``!~``, and the
value in double quotes with ``\\"``, ``\\\\`` and ``\\n`` escapes. Regular expressions are
compiled here with Python's ``re``, close to Go's RE2 for what filters use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from compose_rollback.errors import SettingsError

# A label name both parsers take unquoted; the value is a double-quoted Go-style string.
# Only the escapes both read alike: 0.25 keeps any other ``\x`` as is, 0.27+ (Go's
# ``strconv.Unquote``) reads ``\t`` as a tab and refuses ``\.``; write ``\\.`` in a regex.
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\["\\n])*)"\s*')
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def parse_matcher(value: object, *, path: str) -> tuple[str, str, str]:
    """``(name, operator, value)`` of one API v2 matcher, or a ``SettingsError`` at ``path``."""
    if not isinstance(value, str):
        raise SettingsError(path, f'expected a matcher like service="web", got {value!r}')
    match = _MATCHER.fullmatch(value)
    if match is None:
        raise SettingsError(path, f'expected a matcher like service="web" (operators =, !=, '
                            f'=~, !~; the value in double quotes, escapes \\" \\\\ \\n '
                            f"only), got {value!r}")
    name, operator, raw = match.groups()
    text = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], "\\" + m[1]), raw)
    if operator in ("=~", "!~"):
        try:
            re.compile(text)
        except re.error as error:
            raise SettingsError(path, f"invalid regular expression in {value!r}: "
                                f"{error}") from None
    return name, operator, text


def parse_filters(value: object, *, path: str) -> tuple[str, ...]:
    """The ``filter:`` of an alertmanager gate: one matcher or a list of them."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise SettingsError(path, 'expected a list of matchers like [service="web"]')
    for index, item in enumerate(items):
        parse_matcher(item, path=f"{path}[{index}]" if isinstance(value, list) else path)
    return tuple(str(item).strip() for item in items)


def label_names(filters: Sequence[str]) -> list[str]:
    """The label names ``filters`` (already checked) select on, in order."""
    return [m[1] for f in filters if (m := _MATCHER.fullmatch(f))]
