"""Interpolation of ``${VAR}`` references in our own ``x-rollback`` settings.

Compose drops service-level extension fields from its interpolated ``config`` output, so gate
settings are read from the non-interpolated model and interpolated here, in memory only, with
compose's rules: ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``$$`` for a literal dollar; the shell environment wins over env files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from compose_rollback.errors import BadInput, MissingVariable
from compose_rollback.project import Project

_REF = re.compile(
    r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def read_env_file(path: Path) -> dict[str, str]:
    """A compose-style ``.env`` file, read with compose's own rules (see ``dotenv``)."""
    from compose_rollback.dotenv import EnvFileError, parse_env

    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    try:
        return parse_env(text)
    except EnvFileError as error:
        raise BadInput(f"{path}: {error}", hint="fix the env file (KEY=VALUE lines)") from None


def environment(project: Project, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What compose interpolates with: the shell, then env files (or ``.env``).

    A resolved project carries exactly compose's environment; ``environ`` (tests) rebuilds it
    from the env files instead.
    """
    if environ is None and project.environment:
        return dict(project.environment)
    files = project.env_files or (project.directory / ".env",)
    merged: dict[str, str] = {}
    for path in files:
        merged.update(read_env_file(path))
    merged.update(os.environ if environ is None else environ)
    return merged


def interpolate(value: Any, env: Mapping[str, str], *, path: str = "x-rollback") -> Any:
    """Interpolate every string inside ``value`` (mappings and lists walked)."""
    if isinstance(value, str):
        return _one(value, env, path)
    if isinstance(value, Mapping):
        return {k: interpolate(v, env, path=f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, path=f"{path}[{i}]") for i, v in enumerate(value)]
    return value


class Interpolated(str):
    """An interpolated value that remembers how it was written (``raw``, with ``${VAR}``),
    so messages, history and webhooks can show the reference instead of the value."""

    raw: str

    def __new__(cls, value: str, *, raw: str) -> Interpolated:
        made = super().__new__(cls, value)
        made.raw = raw
        return made


def as_written(value: object) -> str:
    """How a setting was written: ``${TOKEN}``, never the secret it expands to."""
    if isinstance(value, list | tuple):
        return " ".join(as_written(v) for v in value)
    return str(getattr(value, "raw", value))


def _one(text: str, env: Mapping[str, str], path: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) or match.group(5)
        op, arg = match.group(3), match.group(4) or ""
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return arg if unset else str(value)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise MissingVariable(path, name, arg)
        return value or ""

    result = _REF.sub(replace, text)
    return text if result == text else Interpolated(result, raw=text)


def settings_model(model: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Only the ``x-rollback`` blocks of a model, interpolated (the rest is not needed)."""
    services = {
        name: {"x-rollback": interpolate(svc["x-rollback"], env,
                                         path=f"services.{name}.x-rollback")}
        if isinstance(svc, Mapping) and "x-rollback" in svc else {}
        for name, svc in (model.get("services") or {}).items()
    }
    out: dict[str, Any] = {"services": services}
    if "x-rollback" in model:
        out["x-rollback"] = interpolate(model["x-rollback"], env)
    return out
