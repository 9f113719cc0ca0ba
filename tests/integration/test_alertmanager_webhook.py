"""The webhook in Alertmanager's shapes, checked against a real Alertmanager (Debian's 0.25):

- ``format: alertmanager``: our body has the fields of the one Alertmanager's own webhook
  receiver sends, with the same types: the reference body is captured from a real
  Alertmanager notifying a loopback receiver, not written from memory;
- ``format: alertmanager-api``: our result is POSTed to a real Alertmanager as an alert, which
  then lists it with our labels and the fingerprint we computed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from gates_helpers import (
    assert_deployed,
    assert_rolled_back,
    service,
    settings,
    up,
    webhook_receiver,
    write_compose,
)

from compose_rollback.alertbody import fingerprint
from support.alertmanager import Alertmanager, alertmanager_binary
from support.compose_project import ComposeProject
from support.helpers import wait_for
from support.prereq import need
from support.testimages import AppImages

pytestmark = pytest.mark.docker

ALERT = {"alertname": "HighErrorRate", "service": "web"}


def _compose(project: ComposeProject, images: AppImages, alertmanager: Alertmanager,
             release: int, webhook: str) -> None:
    """The web service gated on Alertmanager (so a fired alert fails it), with a webhook."""
    gate = (f"gates:\n  - alertmanager: {alertmanager.url}\n"
            "    filter: ['service=\"web\"']\n")
    write_compose(project, {"web": service(images.local("healthy"), env={
        "RELEASE": str(release)}, rollback=gate)}, settings=settings(f"hooks:\n  webhook: "
                                                                     f"{webhook}\n"))


def _shape(value: object) -> object:
    """Field names and JSON types, recursively (lists by their first item); a mapping of
    text to text (labels, annotations) is a label set, whatever its names."""
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()) \
            and not {"status", "startsAt"} & set(value):
        return "label set"
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def _real_notification(tmp_path: Path) -> dict[str, Any]:
    """What a real Alertmanager's webhook receiver POSTs for one firing alert."""
    binary = need(alertmanager_binary(), "alertmanager is not installed "
                  "(Debian package prometheus-alertmanager)")
    with webhook_receiver() as hook:
        reference = Alertmanager(tmp_path / "reference", binary=binary, webhook=hook.url)
        (tmp_path / "reference").mkdir()
        reference.start()
        try:
            reference.fire({"alertname": "Reference", "project": "p"},
                           annotations={"summary": "s"})
            wait_for(lambda: hook.posts, 30, 0.1, what="Alertmanager to notify the webhook")
        finally:
            reference.stop()
        body: dict[str, Any] = hook.payloads()[0]
        return body


def test_format_alertmanager_sends_what_alertmanager_webhook_receivers_take(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager, tmp_path: Path
) -> None:
    real = _real_notification(tmp_path)
    with webhook_receiver() as hook:
        target = json.dumps({"url": hook.url, "format": "alertmanager"})
        _compose(project, images, alertmanager, 1, target)
        assert_deployed(up(project, code=0)[1], 1)
        alertmanager.fire(ALERT)
        _compose(project, images, alertmanager, 2, target)
        _, data = up(project, code=1)
        assert_rolled_back(project, data, revision=2, restored=1, reason=("HighErrorRate",))
        resolved, firing = hook.payloads()

    assert _shape(firing) == _shape(real), "our body differs from Alertmanager's own"
    assert (firing["version"], firing["status"], firing["receiver"]) == (
        "4", "firing", "compose-rollback")
    (alert,) = firing["alerts"]
    assert alert["labels"] == {"alertname": "ComposeRollbackDeployFailed",
                               "project": project.name, "revision": "2", "service": "web",
                               "severity": "warning"}
    assert alert["status"] == "firing" and alert["endsAt"] == real["alerts"][0]["endsAt"]
    assert alert["fingerprint"] == fingerprint(alert["labels"])
    assert "HighErrorRate" in alert["annotations"]["description"]
    assert "revision 1 restored" in alert["annotations"]["summary"]
    assert firing["groupLabels"] == {"project": project.name}
    assert firing["commonLabels"] == alert["labels"]
    # The deploy of revision 1 was a resolved notice of the same alert name.
    assert (resolved["status"], resolved["alerts"][0]["labels"]["revision"]) == ("resolved", "1")
    assert resolved["alerts"][0]["endsAt"] == resolved["alerts"][0]["startsAt"]


def test_format_alertmanager_api_pushes_the_result_into_alertmanager(
    project: ComposeProject, images: AppImages, alertmanager: Alertmanager
) -> None:
    target = json.dumps({"url": alertmanager.url, "format": "alertmanager-api"})
    _compose(project, images, alertmanager, 1, target)
    assert_deployed(up(project, code=0)[1], 1)
    alertmanager.fire(ALERT)
    _compose(project, images, alertmanager, 2, target)
    _, data = up(project, code=1)
    assert_rolled_back(project, data, revision=2, restored=1, reason=("HighErrorRate",))

    (ours,) = alertmanager.alerts('alertname="ComposeRollbackDeployFailed"')
    assert ours["labels"] == {"alertname": "ComposeRollbackDeployFailed",
                              "project": project.name, "revision": "2", "service": "web",
                              "severity": "warning"}
    assert ours["fingerprint"] == fingerprint(ours["labels"]), "fingerprints differ"
    assert "HighErrorRate" in ours["annotations"]["description"]
    # Revision 1's deploy was posted as resolved: Alertmanager keeps it, but not as active.
    everything = alertmanager.alerts('alertname="ComposeRollbackDeployFailed"',
                                     active_only=False)
    assert {a["labels"]["revision"] for a in everything} == {"2"}
