"""The webhook's ``format`` setting and the Alertmanager shapes of a result, offline. Checked
against a real Alertmanager in ``tests/integration/test_alertmanager_webhook.py``."""

from __future__ import annotations

import pytest

from compose_rollback.alertbody import api_alerts, fingerprint, webhook_message
from compose_rollback.errors import SettingsError
from compose_rollback.gates.specs import parse_hooks
from compose_rollback.hooks import payload


def _event(outcome: str, **kw: object) -> dict[str, object]:
    fields: dict[str, object] = {"project": "shop", "revision": 7, "previous": 6,
                                 "outcome": outcome, "status": "failed", "restored": 6,
                                 "reason": "web: gate http failed", "service": "web"}
    fields.update(kw)
    return payload(**fields)  # type: ignore[arg-type]


def test_webhook_setting_takes_a_url_or_a_url_and_a_format() -> None:
    assert parse_hooks({"webhook": "http://127.0.0.1:1/h"}, path="h").webhook_format == \
        "compose-rollback"
    hooks = parse_hooks({"webhook": {"url": "http://127.0.0.1:1/h", "format": "alertmanager"}},
                        path="h")
    assert (hooks.webhook, hooks.webhook_format) == ("http://127.0.0.1:1/h", "alertmanager")


@pytest.mark.parametrize(("raw", "path"), [
    ({"url": "http://a/", "format": "slack"}, "h.webhook.format"),
    ({"format": "alertmanager"}, "h.webhook.url"),
    ({"url": "nope"}, "h.webhook.url"),
    ({"url": "http://a/", "colour": 1}, "h.webhook.colour"),
])
def test_bad_webhook_settings_name_their_path(raw: object, path: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_hooks({"webhook": raw}, path="h")
    assert caught.value.path == path


def test_fingerprint_is_alertmanagers() -> None:
    # Values Alertmanager 0.25 reported for these label sets (POST then GET /api/v2/alerts).
    assert fingerprint({"alertname": "X", "service": "web", "severity": "page"}) == \
        "2cabf8fd00df9d71"
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a's offset basis: nothing hashed


def test_a_rollback_is_a_firing_alert_and_a_deploy_a_resolved_one() -> None:
    firing = webhook_message(_event("rolled_back"))
    (alert,) = firing["alerts"]
    assert (firing["version"], firing["status"], alert["status"]) == ("4", "firing", "firing")
    assert alert["labels"] == {"alertname": "ComposeRollbackDeployFailed", "project": "shop",
                               "revision": "7", "service": "web", "severity": "warning"}
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert alert["annotations"]["summary"] == \
        "revision 7 of shop failed its gates; revision 6 restored"
    assert firing["groupKey"] == '{}:{project="shop"}'
    deployed = webhook_message(_event("deployed", service="", reason=""))
    (ok,) = deployed["alerts"]
    assert (ok["status"], ok["endsAt"]) == ("resolved", ok["startsAt"])
    assert "service" not in ok["labels"] and "description" not in ok["annotations"]
    lost = webhook_message(_event("unrestored"))["alerts"][0]["labels"]
    assert (lost["alertname"], lost["severity"]) == ("ComposeRollbackRestoreFailed", "critical")


def test_the_api_body_leaves_a_firing_alert_without_an_end() -> None:
    (firing,) = api_alerts(_event("rolled_back"))
    assert set(firing) == {"labels", "annotations", "startsAt"}
    (resolved,) = api_alerts(_event("deployed"))
    assert resolved["endsAt"] == resolved["startsAt"]
