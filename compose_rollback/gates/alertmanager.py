"""The ``alertmanager`` gate: fails while a matching alert is active, neither silenced nor
inhibited, in an Alertmanager (API v2, the same in 0.25 and current releases).

    x-rollback:
      gates:
        - alertmanager: http://127.0.0.1:9093
          filter: ['service="web"', 'severity=~"critical|page"']

Each probe asks ``GET /api/v2/alerts?active=true&silenced=false&inhibited=false&filter=…``
(one ``filter`` per matcher; Alertmanager ANDs them). Like the prometheus gate it fails at the
first bad answer (``failures: 1``), and it is polled through the whole soak.

Matchers are checked at load (``gates.matchers``).

A failure names each alert by ``alertname`` and the labels that matter (those the filter
names, and ``severity``), never by its annotations: annotations are free text templated
from anything (query results, URLs with tokens, runbook links), labels are the alert's
identity that Alertmanager itself routes and shows on every page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from compose_rollback.gates.matchers import label_names
from compose_rollback.gates.probes import Outcome
from compose_rollback.gates.specs import GateSpec
from compose_rollback.urlopen import urlopen

#: How many alerts a failure names before it says "and N more".
SHOWN = 3


def alerts_url(base: str, filters: Sequence[str]) -> str:
    """The API v2 query for active, unsilenced, uninhibited alerts matching every filter."""
    from urllib.parse import urlencode

    query = [("active", "true"), ("silenced", "false"), ("inhibited", "false"),
             *(("filter", f) for f in filters)]
    return f"{base.rstrip('/')}/api/v2/alerts?{urlencode(query)}"


def probe_alertmanager(spec: GateSpec) -> Outcome:
    """Passes while no alert matches; fails naming the alerts, or why Alertmanager did not
    answer (unreachable, an error status, a body that is not the API's list of alerts)."""
    import urllib.error

    assert isinstance(spec.target, str)
    where = f"Alertmanager at {spec.label}"
    try:
        with urlopen(alerts_url(spec.target, spec.filters), timeout=spec.timeout) as response:
            body = response.read(4 << 20)
    except urllib.error.HTTPError as error:
        detail = " ".join(error.read(300).decode("utf-8", "replace").split())
        return Outcome(False, f"{where} answered {error.code}" + (f": {detail}" if detail else ""))
    except (urllib.error.URLError, OSError, ValueError) as error:
        return Outcome(False, f"{where} unreachable: {getattr(error, 'reason', error)}")
    try:
        alerts = json.loads(body)
    except ValueError:
        return Outcome(False, f"{where} did not answer JSON")
    if not isinstance(alerts, list) or not all(isinstance(a, Mapping) for a in alerts):
        return Outcome(False, f"{where} did not answer a list of alerts")
    if not alerts:
        return Outcome(True, f"no active alert matches {spec.query_label or 'any alert'}")
    return Outcome(False, describe_alerts(alerts, label_names(spec.filters)))


def describe_alerts(alerts: Sequence[Mapping[str, object]], names: Sequence[str]) -> str:
    """``2 alerts firing: HighErrorRate{service="web", severity="page"}, …``."""
    shown = sorted({_one(alert, names) for alert in alerts})
    more = f" and {len(shown) - SHOWN} more" if len(shown) > SHOWN else ""
    noun = "alert" if len(alerts) == 1 else "alerts"
    return f"{len(alerts)} {noun} firing: {', '.join(shown[:SHOWN])}{more}"


def _one(alert: Mapping[str, object], names: Sequence[str]) -> str:
    labels = alert.get("labels")
    labels = labels if isinstance(labels, Mapping) else {}
    keep = [n for n in dict.fromkeys([*names, "severity"]) if n != "alertname" and n in labels]
    inner = ", ".join(f"{n}={json.dumps(str(labels[n]))}" for n in keep)
    return f"{labels.get('alertname', '(no alertname)')}{{{inner}}}"
