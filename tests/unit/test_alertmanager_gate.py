"""The alertmanager gate offline: matcher validation at load, the API v2 URL, how a failure
names the alerts. The gate against a real Alertmanager is in
``tests/integration/test_alertmanager_gate.py``."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from compose_rollback.errors import SettingsError
from compose_rollback.gates.alertmanager import alerts_url, describe_alerts
from compose_rollback.gates.matchers import parse_matcher
from compose_rollback.gates.specs import parse_gate
from compose_rollback.settings import load_settings


@pytest.mark.parametrize(("text", "parsed"), [
    ('service="web"', ("service", "=", "web")),
    ('severity=~"critical|page"', ("severity", "=~", "critical|page")),
    ('env!="staging"', ("env", "!=", "staging")),
    ('instance!~"10\\\\.0\\\\..*"', ("instance", "!~", "10\\.0\\..*")),
    (' job = "a \\"quoted\\" b" ', ("job", "=", 'a "quoted" b')),
    ('revision=""', ("revision", "=", "")),
])
def test_good_matchers(text: str, parsed: tuple[str, str, str]) -> None:
    assert parse_matcher(text, path="m") == parsed


@pytest.mark.parametrize("text", [
    "service=web",             # unquoted: 0.25 takes it, the strict UTF-8 parser may not
    'service=="web"',
    'service~="web"',
    '"service"="web"',
    'se rvice="web"',
    '1st="web"',
    'service="we"b"',
    'severity=~"(critical"',   # a regex that does not compile
    'instance=~"10\\.0"',      # an escape 0.27+ refuses (Go's strconv.Unquote): write \\.
    'job="a\\tb"',             # \t: a tab to 0.27+, backslash-t to 0.25
    '{service="web"}',         # a selector, not one matcher
    'a="1",b="2"',             # two matchers: one per list item
    "",
])
def test_bad_matchers_are_refused(text: str) -> None:
    with pytest.raises(SettingsError):
        parse_matcher(text, path="m")


@pytest.mark.parametrize(("filter_", "path"), [
    (['service="web"', "severity=page"], "g.filter[1]"),
    ("oops", "g.filter"),
    ([], "g.filter"),
    ([3], "g.filter[0]"),
    ({"service": "web"}, "g.filter"),
])
def test_a_bad_filter_names_its_path(filter_: object, path: str) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_gate({"alertmanager": "http://127.0.0.1:9093", "filter": filter_}, path="g",
                   service=None)
    assert caught.value.path == path


def test_a_bad_matcher_in_a_compose_file_names_the_service_path() -> None:
    model = {"services": {"web": {"x-rollback": {"gates": [
        {"alertmanager": "http://127.0.0.1:9093", "filter": ['service="web"', "sev=page"]},
    ]}}}}
    with pytest.raises(SettingsError) as caught:
        load_settings(model)
    assert caught.value.path == "services.web.x-rollback.gates[0].filter[1]"


def test_gate_defaults_and_unknown_keys() -> None:
    spec = parse_gate({"alertmanager": "http://127.0.0.1:9093/",
                       "filter": 'service="web"'}, path="g", service="web")
    assert (spec.kind, spec.filters, spec.failures, spec.service) == (
        "alertmanager", ('service="web"',), 1, "web")  # it must hold for the whole soak
    bare = parse_gate({"alertmanager": "http://127.0.0.1:9093"}, path="g", service=None)
    assert bare.filters == ()  # no filter: any active alert fails the gate
    with pytest.raises(SettingsError) as caught:
        parse_gate({"alertmanager": "http://a:9093", "query": "up"}, path="g", service=None)
    assert caught.value.path == "g.query"
    with pytest.raises(SettingsError) as caught:
        parse_gate({"alertmanager": "127.0.0.1:9093"}, path="g", service=None)
    assert caught.value.path == "g.alertmanager"


def test_the_url_asks_for_active_unsilenced_uninhibited_alerts_with_every_matcher() -> None:
    url = alerts_url("http://127.0.0.1:9093/", ['service="web"', 'severity=~"critical|page"'])
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:9093",
                                                        "/api/v2/alerts")
    assert parse_qsl(parts.query) == [
        ("active", "true"), ("silenced", "false"), ("inhibited", "false"),
        ("filter", 'service="web"'), ("filter", 'severity=~"critical|page"')]
    # Under a route prefix (--web.route-prefix=/am) the API is below it.
    assert urlsplit(alerts_url("https://h/am", [])).path == "/am/api/v2/alerts"


def test_a_failure_names_alerts_by_the_labels_that_matter_never_annotations() -> None:
    alerts = [
        {"labels": {"alertname": "HighErrorRate", "service": "web", "severity": "page",
                    "instance": "10.0.0.7:8080"},
         "annotations": {"description": "token=s3cr3t"}},
        {"labels": {"alertname": "HighLatency", "service": "web"}},
    ]
    text = describe_alerts(alerts, ["service", "alertname"])
    assert text == ('2 alerts firing: HighErrorRate{service="web", severity="page"}, '
                    'HighLatency{service="web"}')
    assert "s3cr3t" not in text and "instance" not in text
    many = [{"labels": {"alertname": f"A{i}"}} for i in range(5)]
    assert describe_alerts(many, []) == "5 alerts firing: A0{}, A1{}, A2{} and 2 more"
