"""Revision overlay files: render (deterministic bytes) and read back.

An overlay is a self-contained compose file: every service of the revision as a complete,
non-interpolated definition tagged ``!override`` with its image pinned. Applied alone (with
``-p`` and ``--project-directory``) it reproduces the revision exactly; layered after
``compose.yaml`` it replaces each service wholesale. ``${VAR}`` references stay references, so
no interpolated value (no secret) is ever written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tag import Tag

TOP_LEVEL_KEYS = ("networks", "volumes", "secrets", "configs", "models")
# Keys that would make compose build or pick another image in place of the pin.
_DROPPED_SERVICE_KEYS = ("build", "profiles", "pull_policy", "image")


@dataclass(frozen=True)
class Header:
    """The comment block at the top of a revision file: number, author, message."""

    revision: int
    created: str
    message: str
    user: str
    host: str
    git: str
    restores: int | None = None

    def lines(self, *, apply_hint: str) -> list[str]:
        lines = [
            f"compose-rollback revision {self.revision}",
            f"created: {self.created}",
            f"by: {self.user}@{self.host}",
        ]
        if self.git:
            lines.append(f"git: {self.git}")
        if self.restores is not None:
            lines.append(f"restores: revision {self.restores}")
        if self.message:
            lines.append(f"message: {self.message}")
        lines.append(f"apply: {apply_hint}")
        return [" ".join(line.split()) for line in lines]


_NEEDS_QUOTES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def _sorted(value: Any) -> Any:
    """Mappings with sorted keys (stable bytes); sequence order is meaningful and kept.

    Strings with control or line-separator characters are double-quoted with escapes, so
    they read back exactly (a plain NEL would be read as a line break)."""
    if isinstance(value, str) and _NEEDS_QUOTES.search(value):
        return DoubleQuotedScalarString(value)
    if isinstance(value, Mapping):
        out = CommentedMap()
        for key in sorted(value, key=str):
            out[_sorted(key)] = _sorted(value[key])
        return out
    if isinstance(value, list | tuple):
        seq = CommentedSeq()
        seq.extend(_sorted(v) for v in value)
        seq.fa.set_block_style()
        return seq
    return value


def top_level(model: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level keys a revision keeps: resources services refer to, and extensions
    (``x-*``: ``x-rollback`` and the user's own, which tools may read)."""
    return {k: v for k, v in model.items()
            if (k in TOP_LEVEL_KEYS or str(k).startswith("x-")) and v}


def is_provider(definition: Mapping[str, Any]) -> bool:
    """A service run by a provider plugin (``provider:``): it has no image to pin."""
    return isinstance(definition.get("provider"), Mapping) and not definition.get("image")


def pinned_service(definition: Mapping[str, Any], *, image: str | None,
                   local: bool) -> dict[str, Any]:
    """A snapshot service definition with its image pinned and nothing that could replace it.
    ``image=None``: a provider service, kept as it is (it has no image)."""
    service = {k: v for k, v in definition.items() if k not in _DROPPED_SERVICE_KEYS}
    if image is None:
        return service
    service["image"] = image
    # A local image id must never be pulled; a registry digest may be pulled if missing.
    service["pull_policy"] = "never" if local else "missing"
    return service


def render(
    *, project: str, header: Header, services: Mapping[str, Mapping[str, Any]],
    top_level: Mapping[str, Any], apply_hint: str,
) -> str:
    """The overlay's exact text. Same input, same bytes."""
    doc = CommentedMap()
    doc["name"] = project
    body = CommentedMap()
    for name in sorted(services):
        service = _sorted(services[name])
        service.yaml_set_ctag(Tag(suffix="!override"))
        body[name] = service
    doc["services"] = body
    order = {key: i for i, key in enumerate(TOP_LEVEL_KEYS)}  # then x-* keys, sorted
    for key in sorted(top_level, key=lambda k: (order.get(k, len(order)), str(k))):
        if top_level[key]:
            doc[key] = _sorted(top_level[key])
    yaml = YAML()
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    comment = "".join(f"# {line}\n" for line in header.lines(apply_hint=apply_hint))
    return comment + buf.getvalue()


class _OverlayConstructor(SafeConstructor):
    """Safe constructor that also accepts compose's ``!override`` and ``!reset`` tags."""


def _construct_tagged(constructor: SafeConstructor, node: Node) -> Any:
    if isinstance(node, MappingNode):
        return constructor.construct_mapping(node, deep=True)
    if isinstance(node, SequenceNode):
        return constructor.construct_sequence(node, deep=True)
    if isinstance(node, ScalarNode):
        return constructor.construct_scalar(node)
    raise OverlayError(f"unexpected YAML node {type(node).__name__}")


_OverlayConstructor.add_constructor("!override", _construct_tagged)
_OverlayConstructor.add_constructor("!reset", _construct_tagged)


class OverlayError(ValueError):
    pass


def load_yaml(text: str) -> Any:
    """Safe-load compose YAML (no python tags, no duplicate keys); compose tags accepted."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _OverlayConstructor
    try:
        return yaml.load(text)
    except (YAMLError, ValueError, TypeError, AttributeError, RecursionError,
            OverflowError) as error:  # bad !!binary, !!timestamp, … surface as these
        raise OverlayError(" ".join(str(error).split())[:200]) from error


def parse(text: str) -> dict[str, Any]:
    """Read an overlay back into plain data (tags dropped); reject anything malformed."""
    data = load_yaml(text)
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        raise OverlayError("it has no services mapping")
    for name, service in data["services"].items():
        if not isinstance(service, dict) or not (
                isinstance(service.get("image"), str) or is_provider(service)):
            raise OverlayError(f"service {name!r} has no pinned image")
    return data

