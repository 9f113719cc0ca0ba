"""Which services ``up SERVICE...`` deploys: what ``docker compose up SERVICE...`` starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def deployed_services(model: Mapping[str, Any], services: Sequence[str]) -> list[str]:
    """The named services and, transitively, what they depend on (compose's normalised model
    lists ``links``, ``volumes_from`` and ``network_mode: service:`` under ``depends_on``
    too); every service when none is named. Everything returned is deployed *and* gated."""
    defs = model["services"]
    if not services:
        return sorted(defs)
    seen: set[str] = set()
    todo = list(services)
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        todo.extend(sorted(defs[name].get("depends_on") or {}))
    return sorted(seen)
