"""How a revision's definitions are derived from Compose's models (pure parts, no Docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compose_rollback.errors import Unfaithful
from compose_rollback.overlay import Header, render, top_level
from compose_rollback.project import Project
from compose_rollback.snapshot import (
    _volume_target,
    derive,
    differences,
    raw_services,
    restore_as_written,
)


def _raw(tmp_path: Path, *texts: str) -> dict[str, list[Any]]:
    files = []
    for i, text in enumerate(texts):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text)
        files.append(path)
    return raw_services(files)


def test_short_syntax_parsed_around_a_reference_is_put_back_as_written(tmp_path: Path) -> None:
    raw = _raw(tmp_path, """services:
  web:
    volumes: ["${DATA:-./data}:/data", "./plain:/plain"]
    devices: ["${DEV:-/dev/null}:/dev/x"]
    networks: ["${NET:-back}"]
    secrets: [{source: "${KEY:-key}", mode: 0400}]
""")
    snapshot = {"services": {"web": {
        "volumes": [{"type": "volume", "source": "${DATA:-./data}", "target": "/data"},
                    {"type": "bind", "source": "./plain", "target": "/plain"}],
        "devices": [{"source": "${DEV", "target": "-/dev/null}", "permissions": "/dev/x"}],
        "networks": {"${NET:-back}": None},
        "secrets": [{"source": "${KEY:-key}", "mode": 256}],
    }, "off": {"image": "x"}}}
    web = restore_as_written(snapshot, raw, services=["web"])["services"]
    assert set(web) == {"web"}  # a service of an inactive profile is not Compose's to run
    assert web["web"]["volumes"] == [
        "${DATA:-./data}:/data", {"type": "bind", "source": "./plain", "target": "/plain"}]
    assert web["web"]["devices"] == ["${DEV:-/dev/null}:/dev/x"]
    assert web["web"]["networks"] == ["${NET:-back}"]  # a list, not a key never interpolated
    assert web["web"]["secrets"] == [{"source": "${KEY:-key}", "mode": 256}]  # model's number


def test_merged_values_keep_the_models_merge(tmp_path: Path) -> None:
    raw = _raw(tmp_path, """services:
  base: {volumes: ["./b:/b"], devices: ["/dev/null:/dev/b"]}
  child: {extends: base, devices: ["${DEV:-/dev/zero}:/dev/c"], volumes: ["${C:-./c}:/c"]}
""", """services:
  child:
    volumes: !reset []
""")
    model_devices = [{"source": "/dev/null", "target": "/dev/b"}, {"source": "${DEV"}]
    snapshot = {"services": {"child": {"devices": model_devices, "volumes": []}}}
    child = restore_as_written(snapshot, raw, services=["child"])["services"]["child"]
    assert child["devices"] == model_devices  # merged with the base: Compose's check decides
    assert child["volumes"] == []


def test_a_field_written_in_one_of_several_files_is_put_back(tmp_path: Path) -> None:
    raw = _raw(tmp_path, 'services: {web: {devices: ["${D:-/dev/null}:/dev/x"]}}\n',
               'services: {web: {volumes: ["./rel:/data"]}}\n',
               'services:\n  api: !override\n    devices: ["${E:-/dev/zero}:/dev/y"]\n')
    broken = [{"source": "${D", "target": "-/dev/null}", "permissions": "/dev/x"}]
    snapshot = {"services": {"web": {"devices": broken}, "api": {"devices": broken}}}
    out = restore_as_written(snapshot, raw, services=["api", "web"])["services"]
    assert out["web"]["devices"] == ["${D:-/dev/null}:/dev/x"]
    assert out["api"]["devices"] == ["${E:-/dev/zero}:/dev/y"]


def test_volumes_merged_from_files_are_put_back_by_target(tmp_path: Path) -> None:
    raw = _raw(tmp_path, 'services: {web: {volumes: ["./a:/a"]}}\n',
               'services: {web: {volumes: ["/srv:/b:${MODE:-ro}"]}}\n')
    a = {"type": "bind", "source": "./a", "target": "/a"}
    snapshot = {"services": {"web": {"volumes": [a, {"type": "bind", "target": "/b"}]}}}
    web = restore_as_written(snapshot, raw, services=["web"])["services"]["web"]
    assert web["volumes"] == [a, "/srv:/b:${MODE:-ro}"]


def test_lists_of_several_files_are_written_one_after_the_other(tmp_path: Path) -> None:
    raw = _raw(tmp_path, 'services: {web: {volumes: ["${A}:/data"], devices: ["${D}:/x"]}}\n',
               'services: {web: {volumes: ["./rel:/data"], devices: []}}\n',
               'services: {web: {ports: ["${P}:80"]}}\n',
               'services: {web: {ports: !reset []}}\n')
    rel = {"type": "bind", "source": "./rel", "target": "/data"}
    snapshot = {"services": {"web": {"volumes": [rel], "devices": [{"source": "${D"}]}}}
    web = restore_as_written(snapshot, raw, services=["web"])["services"]["web"]
    # Compose merges them again by target when applied, the later entry winning, as it did
    assert web["volumes"] == ["${A}:/data", "./rel:/data"]
    assert web["devices"] == ["${D}:/x"]
    assert "ports" not in web


def test_a_later_plain_entry_for_the_same_target_wins(tmp_path: Path) -> None:
    raw = _raw(tmp_path, 'services: {base: {volumes: ["./b:/b"]}}\n',
               'services: {web: {extends: base, volumes: ["${A}:/data", "./rel:/data"]}}\n')
    rel = {"type": "bind", "source": "./rel", "target": "/data"}
    b = {"type": "bind", "source": "./b", "target": "/b"}
    web = restore_as_written({"services": {"web": {"volumes": [b, rel]}}}, raw,
                             services=["web"])["services"]["web"]
    assert web["volumes"] == [b, rel]


@pytest.mark.parametrize(("spec", "target"), [
    ("${A:-./x}:/data:ro", "/data"), ("/srv:/d/../e/:${M}", "/e"), ("C:\\x:/win", "/win"),
    ("/anon", "/anon"), ("${V:-a:b}:/t", "/t"),
])
def test_volume_target_is_split_as_compose_splits(spec: str, target: str) -> None:
    assert _volume_target(spec) == target


def test_differences_name_paths_never_values() -> None:
    a = {"services": {"web": {"environment": {"TOKEN": "s3cr3t"}, "image": "x"}}}
    b = {"services": {"web": {"environment": {"TOKEN": "other"}, "image": "y"}}}
    assert differences(a, b) == ["services.web.environment.TOKEN"]


class _Engine:
    def __init__(self, resolved: dict[str, Any]) -> None:
        self.resolved = resolved
        self.texts: list[str] = []

    def config(self, project: Project, *, interpolate: bool) -> dict[str, Any]:
        self.texts.append(project.files[0].read_text())
        return self.resolved


def test_a_revision_that_would_resolve_otherwise_is_refused(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {web: {environment: {X: '${X}'}}}\n")
    project = Project(name="p", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    model = {"services": {"web": {"environment": {"X": "s3cr3t"}}}}
    engine = _Engine({"services": {"web": {"environment": {"X": "else"}}}})
    with pytest.raises(Unfaithful) as raised:
        derive(engine=engine, project=project, model=model,
               snapshot={"services": {"web": {"environment": {"X": "${X}"}}}})
    assert raised.value.fields == ["services.web.environment.X"]
    assert "s3cr3t" not in raised.value.one_line()
    assert "${X}" in engine.texts[0] and "s3cr3t" not in engine.texts[0]


def test_nothing_to_fill_in_needs_no_check(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {web: {image: 'app:${TAG}'}}\n")
    project = Project(name="p", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    engine = _Engine({})
    snapshot = {"services": {"web": {"image": "app:${TAG}", "command": ["a"]}}}
    assert derive(engine=engine, project=project, model={"services": {"web": {}}},
                  snapshot=snapshot)["services"] == snapshot["services"]
    assert engine.texts == []  # the image is pinned anyway; nothing else can differ


def test_models_and_extensions_are_kept_in_order() -> None:
    model = {"name": "p", "services": {}, "x-b": 1, "models": {"m": {"model": "ai/x"}},
             "x-a": {"k": "${V}"}, "networks": {"n": {}}, "include": ["x"]}
    kept = top_level(model)
    assert set(kept) == {"networks", "models", "x-b", "x-a"}  # not name, services, include
    text = render(project="p", header=Header(1, "t", "", "u", "h", ""), services={},
                  top_level=kept, apply_hint="-")
    assert text.index("networks:") < text.index("models:") < text.index("x-a:") < text.index(
        "x-b:")  # the order of the revisions written before, then the extensions, sorted
