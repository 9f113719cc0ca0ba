"""``reading.Reading``: the compose files are checked before compose's verdict is taken, and a
file that may hold an alias bomb before compose reads it at all."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from compose_rollback.errors import BadInput
from compose_rollback.filecheck import may_alias
from compose_rollback.project import Project
from compose_rollback.reading import Reading

MODEL = {"services": {"app": {"image": "app:1"}}}
BOMB = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{chr(c)}: &{chr(c)} [{','.join([f'*{chr(c - 1)}'] * 9)}]" for c in range(98, 106)),
    "services: {app: {image: x}}", "",
])


class ConfigOnly:
    """Compose's two ``config`` calls, recorded; every call answers ``MODEL``."""

    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.lock = threading.Lock()

    def config(self, project: Project, *, interpolate: bool) -> dict[str, Any]:
        with self.lock:
            self.calls.append(interpolate)
        return {"services": {"app": dict(MODEL["services"]["app"])}}

    def warm(self) -> None:
        return None


def _project(tmp_path: Path, text: str | bytes) -> Project:
    path = tmp_path / "compose.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return Project(name="shop", directory=tmp_path, files=(path,))


def test_a_file_with_an_anchor_is_checked_before_compose_reads_it(tmp_path: Path) -> None:
    engine = ConfigOnly()
    project = _project(tmp_path, BOMB)
    assert may_alias(project)
    with pytest.raises(BadInput, match="alias"):
        Reading(engine, project)
    assert engine.calls == []  # compose never saw the bomb


@pytest.mark.parametrize("text", [
    "services:\n  app: [\n    image: x\n",  # no anchor: compose may start reading it
    "x-base: &base {image: x}\nservices:\n  app: [\n",  # an anchor: checked first
])
def test_a_yaml_syntax_error_is_reported_as_ours_either_way(tmp_path: Path, text: str) -> None:
    engine = ConfigOnly()
    with pytest.raises(BadInput, match=r"compose\.yaml: .* \(line \d+\)") as raised:
        Reading(engine, _project(tmp_path, text))
    assert "fix the YAML syntax" in raised.value.one_line()


def test_a_file_without_an_anchor_is_read_as_before(tmp_path: Path) -> None:
    engine = ConfigOnly()
    project = _project(tmp_path, "services:\n  app:\n    image: app:1\n")
    assert not may_alias(project)
    model, _ = Reading(engine, project).result()
    assert model == MODEL
    assert sorted(engine.calls) == [False, True]


@pytest.mark.parametrize("encoded", [
    "x: &a 1\n".encode("utf-16"), "x: &a 1\n".encode("utf-32"), b"x: &a 1\n"])
def test_an_anchor_is_found_in_any_encoding(tmp_path: Path, encoded: bytes) -> None:
    assert may_alias(_project(tmp_path, encoded))


def test_a_file_that_cannot_be_read_may_alias(tmp_path: Path) -> None:
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "missing.yaml",))
    assert may_alias(project)
