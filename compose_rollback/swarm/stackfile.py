"""A revision as ``docker stack deploy`` reads it.

``docker stack deploy`` has its own compose loader (the docker CLI's, schema 3.x), stricter than
Compose's: it rejects ``pull_policy``, ``name:``, Compose's long ``depends_on``, a ``published``
port given as a string, ``bind.create_host_path``. So a revision is not handed to it as
written: Compose first reads the revision (interpolated, normalised: the same model
``docker compose up`` would run), and this module turns that model into the stack file. The
result holds interpolated values: it goes to ``docker stack deploy -c -`` on stdin and is never
written anywhere.

Two settings are changed on purpose:
- ``update_config.failure_action`` (and ``rollback_config``'s) become ``pause``: Swarm's own
  automatic rollback goes back to the one previous spec it keeps, which after a failed restore
  is the broken one, and it would race the revision we put back (README, "Docker Swarm").
  What the user wrote still decides what *we* do on a failure.
- ``scale`` becomes ``deploy.replicas`` when no replica count is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from compose_rollback.errors import StackRejected

#: Service keys Compose knows and the stack loader does not (or ignores, as here).
_COMPOSE_ONLY = ("pull_policy", "profiles", "scale", "build", "develop", "attach",
                 "post_start", "pre_stop", "provider", "models", "gpus", "use_api_socket")
_OPEN_ADDRESSES = ("", "0.0.0.0", "::")


def refuse_compose_only(services: Mapping[str, Any]) -> None:
    """Settings of our own Compose rollouts that would silently do nothing on Swarm."""
    for name in sorted(services):
        own = (services[name] or {}).get("x-rollback") or {}
        for key in ("canary", "pre_stop"):
            if isinstance(own, Mapping) and own.get(key) is not None:
                raise StackRejected(f"services.{name}.x-rollback.{key}",
                                    f"{key} is for rollouts on Compose; on Swarm, "
                                    "deploy.update_config (parallelism, delay, monitor, order) "
                                    "does the rolling")


def stack_file(model: Mapping[str, Any]) -> str:
    """The stack file (JSON, which YAML loaders read too) of a revision's compose model."""
    out: dict[str, Any] = {}
    for key, value in model.items():
        if key in ("name", "x-rollback") or value is None:
            continue
        out[key] = dict(value) if isinstance(value, Mapping) else value
    out["services"] = {name: _service(str(name), definition)
                       for name, definition in (model.get("services") or {}).items()}
    return json.dumps(out, sort_keys=True)


def _service(name: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    path = f"services.{name}"
    service = {k: v for k, v in definition.items()
               if v is not None and k not in _COMPOSE_ONLY}
    depends = definition.get("depends_on")
    if isinstance(depends, Mapping):  # Swarm starts services in no order: a list is all it reads
        service["depends_on"] = sorted(str(d) for d in depends)
    service["ports"] = [_port(p, path=f"{path}.ports[{i}]")
                        for i, p in enumerate(definition.get("ports") or ())]
    if not service["ports"]:
        del service["ports"]
    volumes = [_volume(v) for v in definition.get("volumes") or ()]
    if volumes:
        service["volumes"] = volumes
    deploy = dict(definition.get("deploy") or {})
    if "replicas" not in deploy and isinstance(definition.get("scale"), int):
        deploy["replicas"] = definition["scale"]
    for key in ("update_config", "rollback_config"):
        deploy[key] = {**(deploy.get(key) or {}), "failure_action": "pause"}
    service["deploy"] = deploy
    return service


def _port(port: object, *, path: str) -> object:
    if not isinstance(port, Mapping):
        return port
    found = {k: v for k, v in port.items() if v is not None and k not in ("name", "app_protocol")}
    address = str(found.pop("host_ip", "") or "")
    if address not in _OPEN_ADDRESSES:
        raise StackRejected(f"{path}.host_ip", f"Swarm publishes a port on every address of "
                            f"every node; it cannot publish on {address} only (take the "
                            "address off, or put a proxy on that address in front)")
    published = found.get("published")
    if isinstance(published, str):
        if not published.isdigit():
            raise StackRejected(f"{path}.published", f"Swarm publishes one port, not a range "
                                f"({published!r})")
        found["published"] = int(published)
    return found


def _volume(volume: object) -> object:
    if not isinstance(volume, Mapping):
        return volume
    found = dict(volume)
    bind = found.get("bind")
    if isinstance(bind, Mapping):  # Compose's own additions to the bind options
        rest = {k: v for k, v in bind.items() if k not in ("create_host_path", "selinux")}
        if rest:
            found["bind"] = rest
        else:
            del found["bind"]
    return found
