"""How each service is to be replaced, read from the Compose model's own keys.

    services:
      web:
        deploy:
          replicas: 2
          update_config:   {order: start-first, parallelism: 1, delay: 5s, monitor: 10s,
                            failure_action: rollback, max_failure_ratio: 0}
          rollback_config: {order: start-first}
        x-rollback: {drain: 3s, pre_stop: "touch /tmp/drain"}

Compose validates the shape of ``update_config`` itself (the enums included) before we see
the model; what it leaves to Swarm (numbers that must be positive, a fixed host port that two
copies cannot share) is checked here, each problem naming the exact path of the key.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from compose_rollback.errors import OverlapImpossible, SettingsError
from compose_rollback.interpolate import interpolate
from compose_rollback.settings import Settings, parse_duration

ORDERS = ("stop-first", "start-first")
ACTIONS = ("rollback", "pause", "continue")
_KEYS = ("parallelism", "delay", "monitor", "failure_action", "max_failure_ratio", "order")


@dataclass(frozen=True)
class UpdateConfig:
    """``deploy.update_config`` (or ``rollback_config``) of one service."""

    order: str = "stop-first"
    # 0: every replica at once, as Compose recreates (Swarm's default is 1: written, it rolls)
    parallelism: int = 0
    delay: float = 0.0
    monitor: float | None = None  # None: the gate's own soak (x-rollback min_healthy)
    failure_action: str = "rollback"  # Swarm's default is pause; ours is the way back
    max_failure_ratio: float = 0.0


@dataclass(frozen=True)
class ServiceRollout:
    """Everything the rollout needs to know about one service."""

    replicas: int = 1
    update: UpdateConfig = field(default_factory=UpdateConfig)
    rollback: UpdateConfig | None = None  # None: the update config serves both ways
    depends_on: tuple[str, ...] = ()
    single_copy: str = ""  # why two copies cannot run side by side ("" when they can)

    def config(self, *, back: bool) -> UpdateConfig:
        return (self.rollback or self.update) if back else self.update

    def own_step(self, *, back: bool) -> bool:
        """True when the service is not simply part of one ``compose up`` (start-first, or
        rolling: fewer replicas at a time than it has)."""
        config = self.config(back=back)
        return config.order == "start-first" or 0 < config.parallelism < self.replicas


@dataclass(frozen=True)
class RolloutConfig:
    """The rollout settings of each service (``x-rollback.rollout``)."""

    services: Mapping[str, ServiceRollout] = field(default_factory=dict)

    def of(self, service: str) -> ServiceRollout:
        return self.services.get(service, ServiceRollout())


def load_rollout(model: Mapping[str, Any], env: Mapping[str, str]) -> RolloutConfig:
    """The rollout settings of a (non-interpolated) model, interpolated in memory."""
    services: dict[str, ServiceRollout] = {}
    for name, service in (model.get("services") or {}).items():
        if isinstance(service, Mapping):
            services[str(name)] = _service(str(name), service, env)
    return RolloutConfig(services)


def _service(name: str, service: Mapping[str, Any], env: Mapping[str, str]) -> ServiceRollout:
    path = f"services.{name}"
    deploy = interpolate(service.get("deploy") or {}, env, path=f"{path}.deploy")
    if not isinstance(deploy, Mapping):
        raise SettingsError(f"{path}.deploy", "expected a mapping")
    update = _update(deploy.get("update_config"), path=f"{path}.deploy.update_config")
    back = deploy.get("rollback_config")
    rollback = None if back is None else _update(back, path=f"{path}.deploy.rollback_config")
    replicas = _replicas(deploy.get("replicas", service.get("scale", 1)),
                         path=f"{path}.deploy.replicas")
    depends = service.get("depends_on") or {}
    return ServiceRollout(
        replicas=replicas, update=update, rollback=rollback,
        depends_on=tuple(sorted(str(d) for d in depends)),
        single_copy=_single_copy(name, service, env),
    )


def _update(block: object, *, path: str) -> UpdateConfig:
    if block is None:
        return UpdateConfig()
    if not isinstance(block, Mapping):
        raise SettingsError(path, f"expected a mapping, got {type(block).__name__}")
    for key in block:
        if key not in _KEYS:
            raise SettingsError(f"{path}.{key}", f"unknown setting (allowed: "
                                f"{', '.join(sorted(_KEYS))})")
    order = _choice(block.get("order", "stop-first"), ORDERS, path=f"{path}.order")
    action = _choice(block.get("failure_action", "rollback"), ACTIONS,
                     path=f"{path}.failure_action")
    monitor = block.get("monitor")
    return UpdateConfig(
        order=order, failure_action=action,
        parallelism=_count(block.get("parallelism", 0), path=f"{path}.parallelism"),
        delay=parse_duration(block.get("delay", 0), path=f"{path}.delay"),
        monitor=None if monitor is None else parse_duration(monitor, path=f"{path}.monitor"),
        max_failure_ratio=_ratio(block.get("max_failure_ratio", 0),
                                 path=f"{path}.max_failure_ratio"),
    )


def _choice(value: object, allowed: tuple[str, ...], *, path: str) -> str:
    if value not in allowed:
        raise SettingsError(path, f"expected one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _count(value: object, *, path: str) -> int:
    number = _whole(value)
    if number is None or number < 0:
        raise SettingsError(path, f"expected a whole number (0 for all at once), got {value!r}")
    return number


def _replicas(value: object, *, path: str) -> int:
    number = _whole(value)
    if number is None or number < 0:
        raise SettingsError(path, f"expected a whole number of replicas, got {value!r}")
    return number


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():  # interpolated: always a string
        return int(value)
    return None


def _ratio(value: object, *, path: str) -> float:
    try:
        ratio = float(value) if not isinstance(value, bool) else -1.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise SettingsError(path, f"expected a ratio between 0 and 1, got {value!r}")
    return ratio


def _single_copy(name: str, service: Mapping[str, Any], env: Mapping[str, str]) -> str:
    """Why two containers of the service cannot run at once ("" when they can)."""
    if service.get("container_name"):
        return "container_name"
    for index, port in enumerate(service.get("ports") or ()):
        value = interpolate(port, env, path=f"services.{name}.ports[{index}]")
        if _fixed_host_port(value):
            return f"ports[{index}]"
    return ""


def _fixed_host_port(port: object) -> bool:
    """A published host port (``8080:80``, ``127.0.0.1:8080:80``, long syntax ``published``);
    a bare container port (``80``) or ``127.0.0.1::80`` lets Docker pick a free one."""
    if isinstance(port, Mapping):
        return bool(str(port.get("published") or "").strip())
    if isinstance(port, int):
        return False
    text = str(port).split("/", 1)[0]
    if text.startswith("["):  # [::1]:8080:80
        text = text.split("]", 1)[-1].lstrip(":")
        return text.count(":") >= 1 and bool(text.rsplit(":", 1)[0].strip())
    parts = text.split(":")
    return len(parts) >= 2 and bool(parts[-2].strip())


def check_overlap(rollout: RolloutConfig, services: list[str], *,
                  canaries: Collection[str] = ()) -> None:
    """Refuse start-first or a canary for a service that cannot run two copies (exit 2,
    nothing changed)."""
    for name in services:
        service = rollout.of(name)
        if not service.single_copy:
            continue
        if name in canaries:
            raise OverlapImpossible(name, f"services.{name}.x-rollback.canary",
                                    service.single_copy, what="a canary")
        for back, config in ((False, service.update), (True, service.rollback)):
            if config is not None and config.order == "start-first":
                key = "rollback_config" if back else "update_config"
                raise OverlapImpossible(name, f"services.{name}.deploy.{key}.order",
                                        service.single_copy)


def with_monitor(settings: Settings, model: Mapping[str, Any]) -> Settings:
    """``update_config.monitor`` is the soak of the service's gate, unless the service's own
    ``x-rollback.min_healthy`` says otherwise (CLI flags, applied later, win over both)."""
    rollout = settings.rollout or RolloutConfig()
    services = dict(settings.services)
    for name, own in settings.services.items():
        monitor = rollout.of(name).update.monitor
        written = ((model.get("services") or {}).get(name) or {}).get("x-rollback") or {}
        if monitor is not None and "min_healthy" not in written:
            services[name] = replace(own, min_healthy=monitor)
    return replace(settings, services=services)
