"""The one rule for missing prerequisites: skip locally, fail when ``CI`` is set."""

from __future__ import annotations

import pytest

from support.prereq import missing, need


def test_a_missing_prerequisite_skips_without_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        missing("no widget")
    with pytest.raises(pytest.skip.Exception, match="no widget"):
        need(None, "no widget")


def test_a_missing_prerequisite_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI is set but no widget; run scripts/"):
        need(None, "no widget")
    with pytest.raises(pytest.fail.Exception, match=r"^CI is set but no knob$"):
        missing("no knob", fix=None)


def test_a_present_prerequisite_is_returned_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert need("/usr/bin/widget", "no widget") == "/usr/bin/widget"
    assert need(0, "falsy but present") == 0
