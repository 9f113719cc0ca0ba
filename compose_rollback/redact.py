"""Secrets out of what we store or send: the values of the project's variables, masked.

What an app prints (health-check output, an exec gate's output, its log lines) goes into the
history, the ``--json`` result, hook environments and webhooks. An app may print its own
environment, and that holds the values of ``${SECRET}``: every such value is replaced by
``***`` in those texts. The values masked are those of the variables the project refers to
(``${VAR}``/``$VAR`` anywhere in its files, ``environment:`` entries passed through from the
shell), as compose would fill them in. Not masked: variables used only in ``image:`` (the pin
writes the image reference anyway) or in the project's ``name:`` (part of every container's
name), and values shorter than ``MIN_LENGTH`` characters (masking ``1`` or ``yes`` would
garble every message and hides nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

MASK = "***"
MIN_LENGTH = 4
_NAME = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")


class Redactor:
    """Replaces every secret value in a text by ``***``; values can be added as they become
    known (the progress sink made by ``progress`` masks with what is known at each line)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        self.values |= {v for v in values if len(v) >= MIN_LENGTH}
        kept = sorted(self.values, key=lambda v: (-len(v), v))  # longest first: no leftovers
        self._pattern = re.compile("|".join(map(re.escape, kept))) if kept else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def progress(self, sink: Callable[[str], None]) -> Callable[[str], None]:
        """A progress sink that masks each line; a line that names its service (the live
        view redraws those in place) keeps its ``service``."""

        def masked(line: str) -> None:
            text = self(line)
            if text != line and hasattr(line, "service"):
                copy = str.__new__(type(line), text)
                copy.service = line.service
                text = copy
            sink(text)

        return masked


def referenced(model: Mapping[str, Any]) -> set[str]:
    """Names of the variables a non-interpolated model takes from the environment."""
    names: set[str] = set()
    for key, value in model.items():
        if key == "name":
            continue  # the project's name is in every container's name: not a secret
        if key == "services" and isinstance(value, Mapping):
            for service in value.values():
                if isinstance(service, Mapping):
                    names |= _service_names(service)
        else:
            names |= _names(value)
    return names


def _service_names(service: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for key, value in service.items():
        if key == "image":
            continue
        if key == "environment" and isinstance(value, Mapping):
            names |= {str(k) for k, v in value.items() if v is None}  # passed through
        names |= _names(value)
    return names


def _names(value: Any) -> set[str]:
    if isinstance(value, str):
        return {m.group(1) or m.group(2) for m in _NAME.finditer(value)
                if m.group(1) or m.group(2)}
    if isinstance(value, Mapping):
        return {n for k, v in value.items() for n in _names(k) | _names(v)}
    if isinstance(value, list | tuple):
        return {n for v in value for n in _names(v)}
    return set()


def redactor_for(models: Iterable[Mapping[str, Any]], env: Mapping[str, str]) -> Redactor:
    """The redactor of the variables these non-interpolated models refer to."""
    names = set().union(*(referenced(m) for m in models))
    return Redactor(env[n] for n in sorted(names) if env.get(n))
