"""The ``x-rollback`` extension block: project defaults and per-service overrides.

Settings live where compose users put extensions: a top-level ``x-rollback:`` mapping and one
per service. Every problem is a ``SettingsError`` naming the exact path of the bad key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from compose_rollback.durations import format_duration, parse_duration
from compose_rollback.errors import SettingsError
from compose_rollback.gates.specs import GateSpec, Hooks, parse_gates, parse_hooks

if TYPE_CHECKING:
    from compose_rollback.rollout.config import RolloutConfig

# Durations used to live here; callers still import them from this module.
__all__ = ["Canary", "ServiceSettings", "Settings", "format_duration", "load_settings",
           "parse_duration"]


def _positive_int(value: object, *, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(path, f"expected a whole number of at least 1, got {value!r}")
    return value


def _flag(value: object, *, path: str) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(path, f"expected true or false, got {value!r}")
    return value


def _orchestrator(value: object, *, path: str) -> str:
    if value not in ("compose", "swarm"):
        raise SettingsError(path, f"expected compose or swarm, got {value!r}")
    return str(value)


def git_mode(value: object, *, path: str) -> str:
    """``x-rollback.git``: ``commit`` (commit the store after each decision) or ``off``."""
    if value is False:
        return "off"
    if value not in ("commit", "off"):
        raise SettingsError(path, f"expected commit or off, got {value!r}")
    return str(value)


def _relative_dir(value: object, *, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(path, f"expected a directory path, got {value!r}")
    return value


def _command(value: object, *, path: str) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        return ("sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SettingsError(path, f"expected a command (a string or a list of strings), "
                        f"got {value!r}")


@dataclass(frozen=True)
class Canary:
    """``x-rollback.canary``: a first step of a few new containers beside the old ones."""

    replicas: int = 1  # how many; with ``percent``, that share of the replicas (rounded up)
    percent: float = 0.0
    duration: float = 0.0  # how long they must stay good (their gate's soak, at least)

    def count(self, total: int) -> int:
        wanted = -(-total * self.percent // 100) if self.percent else self.replicas
        return max(1, min(total, int(wanted)))


def _canary(value: object, *, path: str) -> Canary:
    if not isinstance(value, Mapping):
        raise SettingsError(path, "expected a mapping like {replicas: 1, duration: 30s}")
    for key in value:
        if key not in ("replicas", "duration"):
            raise SettingsError(f"{path}.{key}", "unknown setting (allowed: duration, replicas)")
    raw = value.get("replicas", 1)
    duration = parse_duration(value.get("duration", 0), path=f"{path}.duration")
    if isinstance(raw, str) and re.fullmatch(r"\d+(\.\d+)?%", raw.strip()):
        percent = float(raw.strip()[:-1])
        if not 0 < percent <= 100:
            raise SettingsError(f"{path}.replicas", f"expected a share up to 100%, got {raw!r}")
        return Canary(percent=percent, duration=duration)
    return Canary(replicas=_positive_int(raw, path=f"{path}.replicas"), duration=duration)


@dataclass(frozen=True)
class ServiceSettings:
    """Gate settings for one service, after project defaults and CLI flags are applied."""

    timeout: float = 300.0
    min_healthy: float = 10.0
    oneshot: bool = False  # a job that must exit 0 (a migration), not keep running
    gates: tuple[GateSpec, ...] = ()
    drain: float = 3.0  # start-first: time an old container stays up after the new one passed
    pre_stop: tuple[str, ...] = ()  # run in each old container before the drain wait
    canary: Canary | None = None


@dataclass(frozen=True)
class Settings:
    """Project settings: defaults for every service, plus per-service overrides."""

    timeout: float = 300.0
    min_healthy: float = 10.0
    keep: int = 20
    dir: str = ".rollback"
    gates: tuple[GateSpec, ...] = ()  # project-wide; those naming a service belong to it
    hooks: Hooks = field(default_factory=Hooks)
    drain: float = 3.0
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)
    rollout: RolloutConfig | None = None  # deploy.update_config & co (rollout.config)
    orchestrator: str = "compose"  # or swarm (Context.orchestrator_name decides, flag first)
    git: str = "off"  # or commit: the store committed after each decision (gitstore)
    watch: float = 0.0  # after a deploy succeeds, keep every gate running this long (watch.py)

    def gates_for(self, service: str) -> tuple[GateSpec, ...]:
        own = self.for_service(service).gates
        return own + tuple(g for g in self.gates if g.service == service)

    def without_gates(self, kind: str) -> Settings:
        """These settings with every gate of one kind left out."""
        services = {n: replace(s, gates=tuple(g for g in s.gates if g.kind != kind))
                    for n, s in self.services.items()}
        return replace(self, gates=tuple(g for g in self.gates if g.kind != kind),
                       services=services)

    @property
    def project_gates(self) -> tuple[GateSpec, ...]:
        return tuple(g for g in self.gates if g.service is None)

    def for_service(self, name: str) -> ServiceSettings:
        return self.services.get(
            name, ServiceSettings(timeout=self.timeout, min_healthy=self.min_healthy,
                                  drain=self.drain)
        )

    def with_overrides(
        self, *, timeout: float | None = None, min_healthy: float | None = None
    ) -> Settings:
        """CLI flags win over every file setting."""
        if timeout is None and min_healthy is None:
            return self
        changes: dict[str, Any] = {}
        if timeout is not None:
            changes["timeout"] = timeout
        if min_healthy is not None:
            changes["min_healthy"] = min_healthy
        services = {name: replace(s, **changes) for name, s in self.services.items()}
        return replace(self, services=services, **changes)


Parser = Callable[..., Any]
_PROJECT_KEYS: dict[str, Parser] = {
    "timeout": parse_duration,
    "min_healthy": parse_duration,
    "keep": _positive_int,
    "dir": _relative_dir,
    "gates": lambda v, *, path: parse_gates(v, path=path, service=None),
    "hooks": lambda v, *, path: parse_hooks(v, path=path),
    "drain": parse_duration,
    "orchestrator": _orchestrator,
    "git": git_mode,
    "watch": parse_duration,
}
_SERVICE_KEYS: dict[str, Parser] = {
    "timeout": parse_duration,
    "min_healthy": parse_duration,
    "oneshot": _flag,
    "drain": parse_duration,
    "pre_stop": lambda v, *, path: _command(v, path=path),
    "canary": _canary,
}


def _parse_block(block: object, keys: Mapping[str, Parser], *, path: str) -> dict[str, Any]:
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise SettingsError(path, f"expected a mapping, got {type(block).__name__}")
    parsed: dict[str, Any] = {}
    for key, value in block.items():
        if key not in keys:
            allowed = ", ".join(sorted(keys))
            raise SettingsError(f"{path}.{key}", f"unknown setting (allowed: {allowed})")
        parsed[str(key)] = keys[key](value, path=f"{path}.{key}")
    return parsed


def load_settings(model: Mapping[str, Any]) -> Settings:
    """Validate the ``x-rollback`` blocks of a compose model (``config --format json``)."""
    top = _parse_block(model.get("x-rollback"), _PROJECT_KEYS, path="x-rollback")
    base = Settings(**top)
    services: dict[str, ServiceSettings] = {}
    for name, service in (model.get("services") or {}).items():
        if not isinstance(service, Mapping):
            continue
        path = f"services.{name}.x-rollback"
        keys = {**_SERVICE_KEYS,
                "gates": lambda v, *, path, n=name: parse_gates(v, path=path, service=n)}
        own = _parse_block(service.get("x-rollback"), keys, path=path)
        services[name] = ServiceSettings(
            timeout=own.get("timeout", base.timeout),
            min_healthy=own.get("min_healthy", base.min_healthy),
            oneshot=own.get("oneshot", False), gates=own.get("gates", ()),
            drain=own.get("drain", base.drain), pre_stop=own.get("pre_stop", ()),
            canary=own.get("canary"),
        )
    unknown = [g for g in base.gates if g.service is not None and g.service not in services]
    if unknown:
        raise SettingsError(f"{unknown[0].path}.service",
                            f"no service named {unknown[0].service!r} in this project")
    return replace(base, services=services)
