"""Gate and hook settings as written under ``x-rollback``, validated with exact paths.

    x-rollback:
      gates:
        - http: http://127.0.0.1:8080/health   # status 200-399 by default
          status: 200                          # or "200-299"
          body: ok                             # substring, or body_regex: "^ok"
        - tcp: 127.0.0.1:5432
        - exec: [pg_isready, -q]               # run inside a container of the service
        - prometheus: http://127.0.0.1:9090
          query: sum(rate(http_errors_total[1m])) / sum(rate(http_requests_total[1m]))
          below: 0.01                          # or above: …; no threshold: non-empty is truthy
        - alertmanager: http://127.0.0.1:9093  # fails while a matching alert is active
          filter: ['service="web"', 'severity=~"critical|page"']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from compose_rollback.alertbody import FORMATS as WEBHOOK_FORMATS
from compose_rollback.durations import parse_duration
from compose_rollback.errors import SettingsError
from compose_rollback.gates.matchers import parse_filters
from compose_rollback.interpolate import as_written

KINDS = ("http", "tcp", "exec", "prometheus", "alertmanager")
_COMMON = {"interval", "successes", "failures", "timeout", "service", "name"}
_EXTRA = {
    "http": {"status", "body", "body_regex", "from"},
    "tcp": set(),
    "exec": set(),
    "prometheus": {"query", "below", "above"},
    "alertmanager": {"filter"},
}


@dataclass(frozen=True)
class GateSpec:
    """One probe gate. ``target`` is the URL, host:port or command (a tuple for exec)."""

    kind: str
    target: str | tuple[str, ...]
    path: str  # where it was written, for messages: services.web.x-rollback.gates[0]
    service: str | None = None
    interval: float = 1.0
    successes: int = 1
    failures: int = 3
    timeout: float = 2.0  # per probe
    status: tuple[int, int] = (200, 399)
    body: str | None = None
    body_regex: str | None = None
    inside: bool = False  # http probed from inside the service's container
    query: str = ""
    below: float | None = None
    above: float | None = None
    label: str = ""  # the target as written (``${TOKEN}`` kept): what messages show
    query_label: str = ""  # also an alertmanager gate's filter, as written
    filters: tuple[str, ...] = ()  # alertmanager matchers, ANDed

    def describe(self) -> str:
        return f"{self.kind} {self.label}"


def _url(value: object, path: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") \
            or not urlsplit(value).netloc:
        raise SettingsError(path, f"expected a URL like http://127.0.0.1:8080/health, "
                            f"got {value!r}")
    return value


def _address(value: object, path: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[^\s:]+:\d{1,5}", value):
        raise SettingsError(path, f"expected host:port, got {value!r}")
    return value


def _command(value: object, path: str) -> tuple[str, ...]:
    if isinstance(value, str) and value.strip():
        return ("sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SettingsError(path, f"expected a command (string or list of strings), got {value!r}")


def _status(value: object, path: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return (value, value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{3})\s*-\s*(\d{3})\s*", value)
        if match and 100 <= int(match[1]) <= int(match[2]) <= 599:
            return (int(match[1]), int(match[2]))
    raise SettingsError(path, f"expected a status code like 200 or a range like 200-299, "
                        f"got {value!r}")


def _count(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(path, f"expected a whole number of at least 1, got {value!r}")
    return value


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(path, f"expected a number, got {value!r}")
    return float(value)


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise SettingsError(path, f"expected text, got {value!r}")
    return value


def parse_gate(raw: object, *, path: str, service: str | None) -> GateSpec:
    """One entry of a ``gates:`` list."""
    if not isinstance(raw, Mapping):
        raise SettingsError(path, f"expected a mapping with one of {', '.join(KINDS)}")
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        raise SettingsError(path, f"expected exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    for key in raw:
        if key != kind and key not in _COMMON | _EXTRA[kind]:
            allowed = ", ".join(sorted(_COMMON | _EXTRA[kind]))
            raise SettingsError(f"{path}.{key}", f"unknown {kind} gate setting "
                                f"(allowed: {allowed})")
    at = f"{path}.{kind}"
    target: str | tuple[str, ...] = (
        _command(raw[kind], at) if kind == "exec"
        else _address(raw[kind], at) if kind == "tcp" else _url(raw[kind], at))
    fields: dict[str, Any] = {"kind": kind, "target": target, "path": path,
                              "service": service, "label": as_written(raw[kind])}
    if "service" in raw:
        fields["service"] = _text(raw["service"], f"{path}.service")
    for key in ("interval", "timeout"):
        if key in raw:
            fields[key] = parse_duration(raw[key], path=f"{path}.{key}")
    for key in ("successes", "failures"):
        if key in raw:
            fields[key] = _count(raw[key], f"{path}.{key}")
    if "status" in raw:
        fields["status"] = _status(raw["status"], f"{path}.status")
    if "body" in raw:
        fields["body"] = _text(raw["body"], f"{path}.body")
    if "body_regex" in raw:
        fields["body_regex"] = _regex(raw["body_regex"], f"{path}.body_regex")
    if "from" in raw:
        if raw["from"] not in ("host", "service"):
            raise SettingsError(f"{path}.from", f"expected host or service, got {raw['from']!r}")
        fields["inside"] = raw["from"] == "service"
    if kind == "prometheus":
        if "query" not in raw:
            raise SettingsError(f"{path}.query", "a prometheus gate needs a PromQL query")
        fields["query"] = _text(raw["query"], f"{path}.query")
        fields["query_label"] = as_written(raw["query"])
        for key in ("below", "above"):
            if key in raw:
                fields[key] = _number(raw[key], f"{path}.{key}")
    if kind == "alertmanager" and "filter" in raw:
        fields["filters"] = parse_filters(raw["filter"], path=f"{path}.filter")
        fields["query_label"] = ", ".join(as_written(f) for f in
                                          (raw["filter"] if isinstance(raw["filter"], list)
                                           else [raw["filter"]]))
    if kind in ("prometheus", "alertmanager") and "failures" not in raw:
        fields["failures"] = 1  # it must hold for the whole soak
    spec = GateSpec(**fields)
    if spec.service is None and (kind == "exec" or spec.inside):
        raise SettingsError(f"{path}.service", "a project-wide exec gate (or from: service) "
                            "must name its service")
    return spec


def _regex(value: object, path: str) -> str:
    text = _text(value, path)
    try:
        re.compile(text)
    except re.error as error:
        raise SettingsError(path, f"invalid regular expression: {error}") from None
    return text


def parse_gates(raw: object, *, path: str, service: str | None) -> tuple[GateSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SettingsError(path, "expected a list of gates")
    return tuple(parse_gate(g, path=f"{path}[{i}]", service=service) for i, g in enumerate(raw))


HOOKS = ("pre_up", "post_up", "on_failure", "on_rollback")


@dataclass(frozen=True)
class Hooks:
    """Commands run at points of a deploy, and a webhook that receives each result."""

    pre_up: str | None = None
    post_up: str | None = None
    on_failure: str | None = None
    on_rollback: str | None = None
    webhook: str | None = None
    webhook_format: str = "compose-rollback"  # or alertmanager, alertmanager-api (alertbody)


def _webhook(value: object, path: str) -> dict[str, str]:
    """``webhook: URL`` or ``webhook: {url: URL, format: alertmanager}``."""
    if not isinstance(value, Mapping):
        return {"webhook": _url(value, path)}
    for key in value:
        if key not in ("url", "format"):
            raise SettingsError(f"{path}.{key}", "unknown webhook setting (allowed: format, url)")
    if "url" not in value:
        raise SettingsError(f"{path}.url", "a webhook needs its url")
    fmt = value.get("format", "compose-rollback")
    if fmt not in WEBHOOK_FORMATS:
        raise SettingsError(f"{path}.format", f"expected one of {', '.join(WEBHOOK_FORMATS)}, "
                            f"got {fmt!r}")
    return {"webhook": _url(value["url"], f"{path}.url"), "webhook_format": str(fmt)}


def parse_hooks(raw: object, *, path: str) -> Hooks:
    if raw is None:
        return Hooks()
    if not isinstance(raw, Mapping):
        raise SettingsError(path, "expected a mapping of hooks")
    fields: dict[str, str] = {}
    for key, value in raw.items():
        if key == "webhook":
            fields.update(_webhook(value, f"{path}.webhook"))
        elif key in HOOKS:
            fields[str(key)] = _text(value, f"{path}.{key}")
        else:
            allowed = ", ".join([*HOOKS, "webhook"])
            raise SettingsError(f"{path}.{key}", f"unknown hook (allowed: {allowed})")
    return Hooks(**fields)
