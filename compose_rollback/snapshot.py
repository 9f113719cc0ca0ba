"""A revision's definitions, derived from Compose's own models and checked against them.

Compose gives two models: the interpolated one (what it runs; it holds secrets, so it stays in
memory) and the non-interpolated one (``${VAR}`` kept, what a revision may write). The second
is not always a faithful form of the first: Compose parses short syntax *before* it would have
filled in the variables, so ``${DATA:-./data}:/data`` becomes a named volume, a device string
is split inside ``${DEV:-/dev/null}``, ``/srv:/data:${MODE:-ro}`` loses its ``:ro``, a list of
``${NET}`` becomes a mapping whose key is never interpolated again.

So, per field, the source of truth is chosen:
- the non-interpolated model, wherever it holds no reference the loader had to parse around;
- the field as written in the project's own compose file, where the loader transformed a value
  that still held a reference (Compose parses it again, after interpolation, when the revision
  is applied, exactly as it does for the project);
- and then the result is checked by Compose itself: the candidate, applied alone, must resolve
  to the same model as the project (image, pull policy, build and profiles aside). What still
  differs has no faithful non-secret form (e.g. an included file's own ``env_file`` variables)
  and is refused with the fields named, never written wrong.
"""

from __future__ import annotations

import copy
import dataclasses
import posixpath
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from compose_rollback.errors import (
    NotReadableUninterpolated,
    RollbackError,
    Unfaithful,
    Unreachable,
)
from compose_rollback.overlay import Header, pinned_service, render, top_level
from compose_rollback.project import Project

# Fields a revision never keeps as they are (the pin replaces them), so never compared.
IGNORED_FIELDS = ("image", "pull_policy", "build", "profiles")
_CHECK_IMAGE = "compose-rollback.invalid/check:fidelity"


class ConfigEngine(Protocol):
    def config(self, project: Project, *, interpolate: bool) -> dict[str, Any]: ...


def non_interpolated(engine: ConfigEngine, project: Project) -> dict[str, Any]:
    """The model with ``${VAR}`` kept. Some values Compose only accepts once filled in
    (``ulimits: {nproc: ${N}}``, ``gpus: ${G}``, ``extends: ${S}``): say so."""
    try:
        return engine.config(project, interpolate=False)
    except Unreachable:
        raise
    except RollbackError as error:
        detail = " ".join(error.message.split()).removeprefix("compose rejected the project: ")
        raise NotReadableUninterpolated(detail) from error


def derive(*, engine: ConfigEngine, project: Project, model: Mapping[str, Any],
           snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot a revision may write: non-interpolated, with fields the loader parsed
    around a reference taken as written, checked by Compose to resolve to ``model``."""
    raw = raw_services(project.files)
    included = bool(set(model.get("services") or {}) - set(raw))
    if included:  # their services' own short syntax too (Compose's check decides)
        for name, definitions in raw_services(project.files, included=True).items():
            raw.setdefault(name, definitions)
    candidate = _candidate(model, snapshot, raw)
    if not included and not _has_reference(_written_part(candidate)):
        return candidate  # nothing to fill in, nothing from another scope: nothing can differ
    try:
        actual = applied_alone(engine, project, candidate)
    except Unreachable:
        raise
    except RollbackError as error:  # e.g. a volume parsed as named, which is not declared
        detail = " ".join(error.message.split()).removeprefix("compose rejected the project: ")
        raise Unfaithful([], included=included, rejected=detail) from error
    different = differences(model, actual)
    if different:
        raise Unfaithful(different, included=included)
    return candidate


def _candidate(model: Mapping[str, Any], snapshot: Mapping[str, Any],
               raw: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The services Compose runs (not those of inactive profiles), as written where Compose
    parsed around a reference, without the fields the model leaves out that the snapshot
    holds as null (``environment: null``, which Compose itself would reject)."""
    candidate = restore_as_written(snapshot, raw, services=sorted(model.get("services") or {}))
    for name, definition in candidate["services"].items():
        for field in [f for f, v in definition.items() if v is None]:
            if field not in model["services"][name]:
                del definition[field]
    return candidate


def _written_part(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """What a revision writes of a snapshot, but the fields the pin replaces."""
    services = {name: {k: v for k, v in definition.items() if k not in IGNORED_FIELDS}
                for name, definition in (snapshot.get("services") or {}).items()}
    return {"services": services, **top_level(snapshot)}


# -- the fields as written ----------------------------------------------------------------------
class _Tagged:
    """A value carrying compose's ``!reset``/``!override``: its merge is not a plain one."""

    def __init__(self, value: Any) -> None:
        self.value = value


class _RawConstructor(SafeConstructor):
    pass


def _construct_tagged(constructor: SafeConstructor, node: Node) -> _Tagged:
    if isinstance(node, MappingNode):
        return _Tagged(constructor.construct_mapping(node, deep=True))
    if isinstance(node, SequenceNode):
        return _Tagged(constructor.construct_sequence(node, deep=True))
    if isinstance(node, ScalarNode):
        return _Tagged(constructor.construct_scalar(node))
    return _Tagged(None)


_RawConstructor.add_constructor("!override", _construct_tagged)
_RawConstructor.add_constructor("!reset", _construct_tagged)


def _documents(path: Path) -> Iterator[Any]:
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _RawConstructor
    try:
        yield from yaml.load_all(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError, ValueError, TypeError):
        return  # compose has read the file already; what we cannot read, we do not use


def raw_services(files: Sequence[Path], *, included: bool = False,
                 depth: int = 0) -> dict[str, list[Any]]:
    """Each service's definitions as written in the project's own files (one per document),
    or (``included``) in the files those include. An included file's references resolve in
    its own scope: what is taken from there is always checked by Compose."""
    found: dict[str, list[Any]] = {}
    for path in files:
        for doc in _documents(path):
            if not isinstance(doc, Mapping):
                continue
            services = doc.get("services")
            if not included and isinstance(services, Mapping):
                for name, definition in services.items():
                    found.setdefault(str(name), []).append(definition)
            if included and depth < 10:  # what they include, and what that includes
                nested = _include_paths(doc.get("include"), path.parent)
                for more in (raw_services(nested),
                             raw_services(nested, included=True, depth=depth + 1)):
                    for name, definitions in more.items():
                        found.setdefault(name, []).extend(definitions)
    return found


def _include_paths(entries: Any, base: Path) -> list[Path]:
    """The local files of an ``include:`` list (remote ones are left to Compose's check)."""
    paths: list[Path] = []
    for entry in entries if isinstance(entries, list) else ():
        path = entry.get("path") if isinstance(entry, Mapping) else entry
        for item in path if isinstance(path, list) else [path]:
            if isinstance(item, str) and "://" not in item and not item.startswith("oci:"):
                paths.append(base / item)
    return paths


def _has_reference(value: Any) -> bool:
    if isinstance(value, str):
        return "$" in value.replace("$$", "")
    if isinstance(value, Mapping):
        return any(_has_reference(k) or _has_reference(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_reference(v) for v in value)
    return False


def _base_fields(definition: Mapping[str, Any], raw: Mapping[str, Sequence[Any]],
                 depth: int = 0) -> set[str] | None:
    """The fields a service inherits through ``extends`` within the project's files; None
    when the base cannot be read here (another file: its paths and merge are the model's)."""
    extends = definition.get("extends")
    if extends is None:
        return set()
    name = extends if isinstance(extends, str) else (
        extends.get("service") if isinstance(extends, Mapping) and "file" not in extends
        else None)
    bases = raw.get(str(name), ()) if name is not None else ()
    if len(bases) != 1 or not isinstance(bases[0], Mapping) or depth > 20:
        return None
    inherited = _base_fields(bases[0], raw, depth + 1)
    return None if inherited is None else inherited | set(bases[0])


def _own_definitions(name: str, raw: Mapping[str, Sequence[Any]]) -> list[Any] | None:
    """A service's written definitions that count (after a service-level ``!override``), or
    None when a base service (``extends``) adds to them: then the model's merge stands."""
    definitions = list(raw.get(name, ()))
    for i, definition in enumerate(definitions):
        if isinstance(definition, _Tagged):  # `web: !override`: the earlier files are gone
            definitions = [definition.value, *definitions[i + 1:]]
    if not all(isinstance(d, Mapping) for d in definitions):
        return None
    return definitions


def _written_field(field: str, name: str, raw: Mapping[str, Sequence[Any]]) -> Any:
    """The written value of a service's field: as written when one file holds it, the files'
    lists one after the other when several do (Compose merges them again the same way, later
    entries replacing earlier ones of the same key); ``_NONE`` when it is merged otherwise
    (mappings of several files, a base service): then the model's merge stands."""
    definitions = _own_definitions(name, raw)
    if definitions is None:
        return _NONE
    for definition in definitions:
        inherited = _base_fields(definition, raw)
        if inherited is None or field in inherited:
            return _NONE
    holders = [d[field] for d in definitions if field in d]
    if len(holders) == 1:
        return _NONE if isinstance(holders[0], _Tagged) else holders[0]
    merged: list[Any] = []
    for value in holders:
        if isinstance(value, _Tagged):  # !reset / !override: what came before is gone
            merged, value = [], value.value if value.value is not None else []
        if not isinstance(value, list):
            return _NONE
        merged.extend(value)
    return merged if holders else _NONE


_NONE = object()


def _restore(model: Any, written: Any) -> Any:
    """``model`` with each part Compose transformed around a reference put back as written:
    a string (short syntax, a command line) that holds one, a list that became a mapping.
    Elsewhere the model's own form stands (written YAML 1.1 numbers like ``0400`` and the
    model's defaults are not re-read by us)."""
    if isinstance(written, str):
        return written if written != model and _has_reference(written) else model
    if model is None and written in ([], {}):
        return written  # an explicit empty value the model dropped (`command: []`)
    if isinstance(written, Mapping) and isinstance(model, Mapping):
        return {k: _restore(v, written[k]) if k in written else v for k, v in model.items()}
    if isinstance(written, list) and isinstance(model, list) and len(written) == len(model):
        return [_restore(m, w) for m, w in zip(model, written, strict=True)]
    if isinstance(written, list) and _has_reference(written):
        return written  # reshaped (list to mapping, entries merged): take it as written
    return model


def restore_as_written(snapshot: Mapping[str, Any], raw: Mapping[str, Sequence[Any]], *,
                       services: Sequence[str]) -> dict[str, Any]:
    """The snapshot's ``services`` with every part Compose transformed around a reference put
    back as written (Compose transforms it again, after interpolation, when applied)."""
    out = copy.deepcopy(dict(snapshot))
    out["services"] = {name: out["services"][name] for name in services}
    for name, definition in out["services"].items():
        for field in list(definition):
            if field.startswith("x-") or field in IGNORED_FIELDS:
                continue
            written = _written_field(field, name, raw)
            if written is not _NONE:
                definition[field] = copy.deepcopy(_restore(definition[field], written))
            elif field == "volumes":
                definition[field] = _merged_volumes(definition[field], raw.get(name, ()))
    return out


def _merged_volumes(model: list[Any], definitions: Sequence[Any]) -> list[Any]:
    """Volumes merged from several files (compose merges them by target, the later file
    wins): an entry written in short syntax with a reference is put back as written."""
    written: dict[str, str] = {}  # target -> the short spec written last for it
    for definition in definitions:
        if isinstance(definition, _Tagged):  # `web: !override`: the earlier files are gone
            written.clear()
            definition = definition.value
        entries = definition.get("volumes") if isinstance(definition, Mapping) else None
        if isinstance(entries, _Tagged):
            written.clear()  # !reset / !override: the earlier files' entries are gone
            entries = entries.value
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, str):  # the last entry for a target is the one that counts
                written[_volume_target(entry)] = entry
            elif isinstance(entry, Mapping):
                written.pop(posixpath.normpath(str(entry.get("target"))), None)
    return [_restore(e, written[str(e.get("target"))])
            if isinstance(e, Mapping) and str(e.get("target")) in written else e
            for e in model]


def _volume_target(spec: str) -> str:
    """The target of a short volume spec, split as Compose splits it (not inside ``${}``)."""
    parts, depth, current = [], 0, ""
    for i, char in enumerate(spec):
        if char == "$" and spec[i + 1:i + 2] == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif char == ":" and depth == 0 and not (len(current) == 1 and current.isalpha()):
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    target = parts[1] if len(parts) > 1 else parts[0]
    return posixpath.normpath(target) if target else target


# -- the check by Compose -----------------------------------------------------------------------
def applied_alone(engine: ConfigEngine, project: Project, snapshot: Mapping[str, Any]
                  ) -> dict[str, Any]:
    """What Compose resolves for ``snapshot`` rendered as a revision and applied alone."""
    services = {name: check_service(definition)
                for name, definition in (snapshot.get("services") or {}).items()}
    text = render(project=project.name, header=Header(0, "", "", "", "", ""),
                  services=services, top_level=top_level(snapshot), apply_hint="")
    with tempfile.TemporaryDirectory(prefix="compose-rollback-check-") as tmp:
        path = Path(tmp) / "revision.yaml"  # holds no interpolated value, like a revision
        path.write_text(text, encoding="utf-8")
        return engine.config(dataclasses.replace(project, files=(path,)), interpolate=True)


def check_service(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A definition as a revision writes it, with a stand-in pin (images are not compared)."""
    if "provider" in definition and not definition.get("image"):
        return pinned_service(definition, image=None, local=False)
    return pinned_service(definition, image=_CHECK_IMAGE, local=True)


def comparable(model: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved model without what a revision replaces on purpose."""
    out = copy.deepcopy(dict(model))
    for definition in (out.get("services") or {}).values():
        for key in IGNORED_FIELDS:
            definition.pop(key, None)
    return out


def differences(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """Paths (never values: they may be secrets) where two resolved models differ."""
    return _diff(comparable(expected), comparable(actual), "", depth=0)


def _diff(a: Any, b: Any, path: str, *, depth: int) -> list[str]:
    if a == b:
        return []
    if depth >= 4 or not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return [path or "the model"]
    out: list[str] = []
    for key in sorted(set(a) | set(b), key=str):
        sub = f"{path}.{key}" if path else str(key)
        out.extend(_diff(a.get(key), b.get(key), sub, depth=depth + 1))
    return out
