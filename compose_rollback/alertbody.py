"""Our revision results in Alertmanager's shapes, for the webhook's ``format`` setting.

``alertmanager``: the body Alertmanager's own webhook receiver sends (``version: "4"``, one
alert), so any tool that takes Alertmanager webhooks (chat bridges, incident tools) takes ours.
``alertmanager-api``: one alert POSTed to an Alertmanager's ``/api/v2/alerts``, as a
Prometheus does, so Alertmanager routes, groups, silences and inhibits our events with the
user's own rules.

A failed deploy is a firing ``ComposeRollbackDeployFailed`` alert (severity ``warning``: the
last good revision runs again); one whose restore failed too is ``ComposeRollbackRestoreFailed``
(``critical``: it needs a person). A deployed revision is the same alert ``resolved``. Labels:
``alertname``, ``project``, ``revision``, ``service`` (when one failed), ``severity``. The
annotations hold the summary and the reason, which is masked like everything we store or send
(history and our own webhook body carry the same text); never an interpolated value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMATS = ("compose-rollback", "alertmanager", "alertmanager-api")
RECEIVER = "compose-rollback"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: what Alertmanager sends for "no end"


def alert(event: Mapping[str, Any]) -> dict[str, Any]:
    """One alert (the webhook's ``alerts[]`` item) for a revision result (``hooks.payload``)."""
    outcome = str(event.get("outcome", ""))
    unrestored = outcome == "unrestored"
    labels = {"alertname": "ComposeRollbackRestoreFailed" if unrestored
              else "ComposeRollbackDeployFailed",
              "project": str(event.get("project", "")),
              "revision": "" if event.get("revision") is None else str(event["revision"]),
              "service": str(event.get("service") or ""),
              "severity": "critical" if unrestored else "warning"}
    labels = {k: v for k, v in labels.items() if v}  # Alertmanager drops empty labels too
    firing = outcome != "deployed"
    annotations = {"summary": _summary(event)}
    if event.get("reason"):
        annotations["description"] = str(event["reason"])
    when = str(event.get("time", ""))
    return {"status": "firing" if firing else "resolved", "labels": labels,
            "annotations": annotations, "startsAt": when,
            "endsAt": _ZERO_TIME if firing else when, "generatorURL": "",
            "fingerprint": fingerprint(labels)}


def webhook_message(event: Mapping[str, Any]) -> dict[str, Any]:
    """The whole body of an Alertmanager webhook notification holding that one alert."""
    one = alert(event)
    group = {"project": one["labels"]["project"]} if "project" in one["labels"] else {}
    key = ",".join(f'{k}="{v}"' for k, v in group.items())
    return {"version": "4", "groupKey": f"{{}}:{{{key}}}", "truncatedAlerts": 0,
            "receiver": RECEIVER, "status": one["status"], "alerts": [one],
            "groupLabels": group, "commonLabels": dict(one["labels"]),
            "commonAnnotations": dict(one["annotations"]), "externalURL": ""}


def api_alerts(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts``: a firing alert has no end (Alertmanager ends it
    after its ``resolve_timeout``), a resolved one ends now."""
    one = alert(event)
    posted = {k: one[k] for k in ("labels", "annotations", "startsAt")}
    if one["status"] == "resolved":
        posted["endsAt"] = one["endsAt"]
    return [posted]


def fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's fingerprint of a label set (Prometheus ``model.LabelSet.Fingerprint``:
    FNV-1a 64 over the sorted names and values, each followed by the byte 0xff)."""
    value = 14695981039346656037
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode() + b"\xff":
                value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def _summary(event: Mapping[str, Any]) -> str:
    project, revision = event.get("project", ""), event.get("revision")
    outcome, restored = event.get("outcome"), event.get("restored")
    what = f"revision {revision} of {project}"
    if outcome == "deployed":
        return f"{what} deployed and healthy"
    if outcome == "rolled_back":
        return f"{what} failed its gates; revision {restored} restored"
    if outcome == "unrestored":
        return f"{what} failed and the last good revision could not be restored"
    return f"{what} failed ({outcome})"
