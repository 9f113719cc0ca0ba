"""Compose's ``.env`` parser and ``${VAR}`` substitution, ported from compose-go v2.9.1.

The Compose v2.40.3 release reads project ``.env`` files with compose-go's ``dotenv`` package and
interpolates with its ``template`` package. Both are ported here line by line (quirks included)
because the project name, files and profiles may come from a ``.env``, and a value read
differently would mean a different project. No well-kept Python parser follows these rules:
python-dotenv, for one, lets the file win over the environment inside ``${}``, has no ``$VAR``,
``${VAR:+x}``, ``${VAR:?x}`` or ``KEY: value`` forms, and unescapes single quotes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Lookup = Callable[[str], str | None]

_PATTERN = re.compile(
    r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)"
    r"|{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?](.*))?)}|(?P<invalid>)))")
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")
_ESCAPE = re.compile(r'(\\(?:[abcfnrtv$"\\]|0[0-9]{0,3}))')
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
                   "v": "\v", '"': '"', "\\": "\\"}
_EXPORT = re.compile(r"^export[\t\n\f\r ]+")
_BLANK = "\t\v\f\r \x85\xa0"  # compose-go's isSpace: white space but not a line break


class TemplateError(ValueError):
    """A ``${...}`` that compose rejects: invalid, or a required variable without a value."""


class EnvFileError(ValueError):
    """A line of an env file that compose cannot parse (``line N: problem``)."""


def substitute(template: str, lookup: Lookup) -> str:
    """``template`` with ``$VAR``, ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``, ``${VAR:+x}``,
    ``${VAR+x}``, ``${VAR:?x}``, ``${VAR?x}`` (nested) and ``$$`` replaced as compose does."""
    errors: list[TemplateError] = []

    def replace(match: re.Match[str]) -> str:
        try:
            return _replacement(match.group(0), lookup)
        except TemplateError as error:
            errors.append(error)
            return ""

    result = _PATTERN.sub(replace, template)
    if errors:
        first = errors[0]
        raise TemplateError(str(first) if str(first) else f"invalid template: {template!r}")
    return result


def _replacement(substring: str, lookup: Lookup) -> str:
    operator = _first_operator(substring)
    closing = _first_closing_brace(substring)
    rest = ""
    if closing > -1:
        substring, rest = substring[:closing + 1], substring[closing + 1:]
    match = _PATTERN.match(substring)
    if match is None:  # cannot happen: the truncated text still starts with a reference
        raise TemplateError("")
    if match.group("escaped"):
        return "$"
    name = match.group("named") or ""
    braced = not name
    name = name or match.group("braced") or ""
    if not name:
        raise TemplateError("")
    if braced and operator is not None and operator in name:
        return _apply(name, operator, lookup) + substitute(rest, lookup)
    return lookup(name) or ""


def _first_operator(text: str) -> str | None:
    """The operator that occurs first in the whole match (compose sorts by position)."""
    found = [(text.find(op), op) for op in _OPERATORS if op in text]
    return min(found)[1] if found else None


def _first_closing_brace(text: str) -> int:
    depth = 0
    i = 0
    while i < len(text):
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if text[i] == "{":
            depth += 1
            i += 1  # compose-go skips the character after an opening brace
        i += 1
    return -1


def _apply(substitution: str, operator: str, lookup: Lookup) -> str:
    name, argument = substitution.split(operator, 1)
    argument = substitute(argument, lookup)
    value = lookup(name)
    colon = operator.startswith(":")
    if operator.endswith("-"):  # default when unset (or empty, with ':')
        return argument if value is None or (colon and value == "") else value
    if operator.endswith("+"):  # alternative when set (and not empty, with ':')
        return argument if value is not None and (not colon or value != "") else value or ""
    if value is None or (colon and value == ""):
        reason = f": {argument}" if argument else ""
        raise TemplateError(f"required variable {name} is missing a value{reason}")
    return value


# -- env files ---------------------------------------------------------------------------------
def read_env_files(paths: Sequence[Path], current: Mapping[str, str], *,
                   sources: dict[str, Path] | None = None) -> dict[str, str]:
    """compose-go's ``GetEnvFromFile``: files in order (later ones win), ``${VAR}`` looked up
    in ``current`` (the process environment) first, then in the values read so far.
    ``sources`` (if given) learns which file set each variable.

    Raises ``OSError`` for a missing or unreadable file and ``EnvFileError`` for a bad line.
    """
    values: dict[str, str] = {}

    def lookup(key: str) -> str | None:
        return current[key] if key in current else values.get(key)

    for path in paths:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory", str(path))
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
        before = dict(values) if sources is not None else {}
        try:
            _Parser().parse(data.decode("utf-8", "surrogateescape"), values, lookup)
        except (EnvFileError, TemplateError) as error:
            raise EnvFileError(f"failed to read {path}: {error}") from None
        if sources is not None:
            sources.update({k: path for k, v in values.items() if before.get(k) != v})
    return values


def parse_env(text: str, lookup: Lookup | None = None) -> dict[str, str]:
    """One env file's text, parsed alone (``lookup``: the environment for ``${VAR}``)."""
    out: dict[str, str] = {}
    _Parser().parse(text, out, lookup or (lambda _key: None))
    return out


def _is_space(char: str) -> bool:  # Go's unicode.IsSpace
    return char in "\t\n\v\f\r \x85\xa0" if char < "\u0100" else char.isspace()


class _Parser:
    def __init__(self) -> None:
        self.line = 1

    def parse(self, src: str, out: dict[str, str], lookup: Lookup) -> None:
        def find(key: str) -> str | None:
            found = lookup(key)
            return found if found is not None else out.get(key)

        cutset = src
        while True:
            cutset = self._statement_start(cutset)
            if cutset == "":
                return
            key, left, inherited = self._key_name(cutset)
            if " " in key:
                raise EnvFileError(f"line {self.line}: key cannot contain a space")
            if inherited:
                value = lookup(key)
                if value is not None:
                    out[key] = value
                cutset = left
                continue
            out[key], cutset = self._value(left, find)

    def _statement_start(self, src: str) -> str:
        while True:
            pos = self._first_non_space(src)
            if pos == -1:
                return ""
            src = src[pos:]
            if src[0] != "#":
                return src
            newline = src.find("\n")
            if newline == -1:
                return ""
            src = src[newline:]

    def _first_non_space(self, src: str) -> int:
        for i, char in enumerate(src):
            if char == "\n":
                self.line += 1
            if not _is_space(char):
                return i
        return -1

    def _key_name(self, src: str) -> tuple[str, str, bool]:
        if _EXPORT.match(src):
            src = src[len("export"):].lstrip(_BLANK)
        key, offset, inherited = "", 0, False
        for i, char in enumerate(src):
            if char in _BLANK:
                continue
            if char in "=:\n":  # compose also takes the yaml-like KEY: value
                key, offset, inherited = src[:i], i + 1, char == "\n"
                break
            if char in "_.-[]" or _letter_or_number(char):
                continue
            first = src.split("\n", 1)[0]
            raise EnvFileError(f"line {self.line}: unexpected character {char!r} in variable "
                               f"name {first!r}")
        if src == "":
            raise EnvFileError("zero length string")
        if inherited and " " not in key:
            self.line += 1
        return _rstrip_space(key), src[offset:].lstrip(_BLANK), inherited

    def _value(self, src: str, lookup: Lookup) -> tuple[str, str]:
        if not src or src[0] not in "\"'":
            value, _, rest = src.partition("\n")
            self.line += 1
            value = _rstrip_space(value.split(" #", 1)[0])
            return substitute(value, lookup), rest
        quote, chars, escaped = src[0], [], False
        for i in range(1, len(src)):
            char = src[i]
            if char == "\n":
                self.line += 1
            if char != quote:
                if not escaped and char == "\\":
                    escaped = True
                    continue
                if escaped:
                    escaped = False
                    chars.append("\\")
                chars.append(char)
                continue
            if escaped:  # an escaped quote of the same kind
                escaped = False
                chars.append(char)
                continue
            value = "".join(chars)
            if quote == '"':
                value = substitute(_ESCAPE.sub(_unescape, value), lookup)
            return value, src[i + 1:]
        first = src.split("\n", 1)[0]
        raise EnvFileError(f"line {self.line}: unterminated quoted value {first}")


def _unescape(match: re.Match[str]) -> str:
    text = match.group(0)
    if text == "\\$":
        return "$$"  # compose's own escape for a literal dollar, kept through substitution
    if text.startswith("\\0"):
        digits = text[2:]  # Go reads exactly three octal digits, at most \377
        if len(digits) == 3 and all(d in "01234567" for d in digits) and int(digits, 8) < 256:
            return chr(int(digits, 8))
        return "\\" + digits  # compose drops the 0 even when the rest is no escape
    return _SIMPLE_ESCAPES.get(text[1], text)


def _letter_or_number(char: str) -> bool:
    if char.isascii():
        return char.isalnum()
    import unicodedata

    return unicodedata.category(char)[0] in "LN"


def _rstrip_space(text: str) -> str:
    end = len(text)
    while end and _is_space(text[end - 1]):
        end -= 1
    return text[:end]
