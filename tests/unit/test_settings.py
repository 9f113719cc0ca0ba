"""Settings validation and compose durations."""

from __future__ import annotations

import pytest

from compose_rollback.errors import SettingsError
from compose_rollback.settings import format_duration, load_settings, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("0", 0.0), (5, 5.0),
     ("1.5s", 1.5), ("2m", 120.0)],
)
def test_durations_in_compose_syntax(text: object, seconds: float) -> None:
    assert parse_duration(text, path="x") == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["10", "ten", "", "1x", "s", "-1s", True, None, [], "10s junk"])
def test_bad_durations_name_their_path(bad: object) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_duration(bad, path="services.web.x-rollback.timeout")
    assert caught.value.path == "services.web.x-rollback.timeout"


def test_format_duration_round_trips() -> None:
    for seconds in (0.5, 10.0, 90.0, 120.0):
        assert parse_duration(format_duration(seconds), path="x") == pytest.approx(seconds)


def test_defaults_and_per_service_overrides() -> None:
    settings = load_settings({
        "x-rollback": {"timeout": "1m", "min_healthy": "3s", "keep": 5},
        "services": {"web": {"x-rollback": {"min_healthy": "500ms"}}, "db": {}},
    })
    assert settings.keep == 5
    assert settings.for_service("web").min_healthy == 0.5
    assert settings.for_service("web").timeout == 60.0
    assert settings.for_service("db").min_healthy == 3.0
    assert settings.for_service("unknown").timeout == 60.0


def test_cli_flags_override_file_settings() -> None:
    settings = load_settings({"services": {"web": {"x-rollback": {"min_healthy": "5s"}}}})
    over = settings.with_overrides(min_healthy=0.0)
    assert over.for_service("web").min_healthy == 0.0
    assert over.for_service("web").timeout == 300.0


@pytest.mark.parametrize(
    ("model", "path"),
    [({"x-rollback": {"colour": "red"}}, "x-rollback.colour"),
     ({"x-rollback": {"keep": 0}}, "x-rollback.keep"),
     ({"x-rollback": {"keep": "ten"}}, "x-rollback.keep"),
     ({"x-rollback": "fast"}, "x-rollback"),
     ({"x-rollback": {"dir": ""}}, "x-rollback.dir"),
     ({"services": {"web": {"x-rollback": {"timeout": "soon"}}}},
      "services.web.x-rollback.timeout"),
     ({"services": {"web": {"x-rollback": {"keep": 3}}}}, "services.web.x-rollback.keep")],
)
def test_invalid_settings_name_the_exact_path(model: dict[str, object], path: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(model)
    assert caught.value.path == path
    assert caught.value.one_line().startswith(path)
