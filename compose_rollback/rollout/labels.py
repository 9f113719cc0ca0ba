"""The revision label every container carries, so that gates (a Prometheus query, a proxy)
can tell the containers of one revision from another's.

Its value is the revision in which the service's definition last changed, not the revision
being deployed: a label that changed every revision would change the config hash of every
service, and Compose would recreate services that did not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REVISION_LABEL = "org.compose-rollback.revision"
#: In ``x-rollback`` settings, the number of the revision being deployed: the label's value
#: on every container the deploy creates (hooks get the same name in their environment).
REVISION_VARIABLE = "COMPOSE_ROLLBACK_REVISION"
CONFIG_HASH = "com.docker.compose.config-hash"
NUMBER = "com.docker.compose.container-number"


def without_label(definition: Mapping[str, Any] | None) -> dict[str, Any]:
    """A definition as the user wrote it (our label taken out), for comparisons."""
    found = dict(definition or {})
    labels = found.get("labels")
    if isinstance(labels, Mapping) and REVISION_LABEL in labels:
        rest = {k: v for k, v in labels.items() if k != REVISION_LABEL}
        if rest:
            found["labels"] = rest
        else:
            del found["labels"]
    return found


def labelled(definition: Mapping[str, Any], *, previous: Mapping[str, Any] | None,
             number: int) -> dict[str, Any]:
    """``definition`` with the revision label: the previous revision's value when the
    definition is otherwise unchanged, else ``number``."""
    value = str(number)
    if previous is not None and without_label(previous) == without_label(definition):
        old = (previous.get("labels") or {}).get(REVISION_LABEL)
        value = str(old) if old is not None else value
    found = without_label(definition)
    labels = found.get("labels")
    if isinstance(labels, list):  # compose's model normalises to a mapping; be safe
        labels = dict(str(item).split("=", 1) for item in labels if "=" in str(item))
    found["labels"] = {**(labels or {}), REVISION_LABEL: value}
    return found
