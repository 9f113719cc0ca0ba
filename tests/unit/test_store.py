"""Overlays, the revision store, the lock and the journal (no engine needed)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compose_rollback.errors import CorruptRevision, Locked, UnknownRevision
from compose_rollback.lock import Journal, project_lock
from compose_rollback.overlay import Header, OverlayError, parse, pinned_service, render
from compose_rollback.pins import Pin
from compose_rollback.revisions import Revision, RevisionStore, checksum

HEADER = Header(revision=1, created="2026-01-01T00:00:00Z", message="m", user="u", host="h",
                git="")


def _render(services: dict[str, object]) -> str:
    return render(project="p", header=HEADER, services=services,  # type: ignore[arg-type]
                  top_level={"networks": {"default": {"name": "p_default"}}},
                  apply_hint="docker compose -f compose.yaml -f x up -d")


def test_pinned_service_drops_build_and_profiles() -> None:
    svc = pinned_service({"build": {"context": "."}, "profiles": ["a"], "image": "x",
                          "pull_policy": "always", "command": ["run"]},
                         image="sha256:" + "a" * 64, local=True)
    assert svc == {"command": ["run"], "image": "sha256:" + "a" * 64, "pull_policy": "never"}


def test_render_is_deterministic_and_keeps_references() -> None:
    services = {"web": {"image": "r/app:1@sha256:" + "b" * 64, "environment":
                        {"SECRET": "${SECRET}", "PASS": None, "B": "true"},
                        "ports": ["127.0.0.1:${PORT:-80}:8080"]}}
    one, two = _render(services), _render(dict(reversed(list(services.items()))))
    assert one == two
    assert "${SECRET}" in one
    assert "web: !override" in one
    data = parse(one)
    assert data["services"]["web"]["environment"] == {"B": "true", "PASS": None,
                                                      "SECRET": "${SECRET}"}


_scalar = st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none())
_tree = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.text(alphabet="abcdefgh_", min_size=1, max_size=6), inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(config=st.dictionaries(st.text(alphabet="abcdefgh_", min_size=1, max_size=6), _tree,
                              max_size=4))
def test_overlay_round_trips_any_service_definition(config: dict[str, object]) -> None:
    definition = {**config, "image": "sha256:" + "c" * 64}
    assert parse(_render({"svc": definition}))["services"]["svc"] == definition


@settings(max_examples=80, deadline=None)
@given(text=st.text(max_size=200))
def test_parse_rejects_garbage_without_crashing(text: str) -> None:
    try:
        data = parse(text)
    except OverlayError:
        return
    assert isinstance(data["services"], dict)


@pytest.mark.parametrize("text", [
    "services: [", "a: &a [*a]", "services:\n  web: {image: x}\n  web: {image: y}\n",
    "!!python/object:os.system {}", "services: {web: {}}", "",
])
def test_parse_rejects_bad_overlays(text: str) -> None:
    with pytest.raises(OverlayError):
        parse(text)


def _revision(number: int, text: str, status: str = "pending") -> Revision:
    pin = Pin("web", "app:1", "sha256:" + "d" * 64, "sha256:" + "d" * 64, local=True,
              retention="app:rollback-p-dddddddddddd")
    return Revision(number=number, status=status, kind="up", created="t",
                    file=f"revisions/{number:04d}.yaml", sha256=checksum(text),
                    pins={"web": pin}, services=("web",))


def test_store_records_promotes_and_detects_corruption(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path / "p")
    text = _render({"web": {"image": "sha256:" + "d" * 64}})
    store.add(_revision(1, text), text)
    store.promote(1, finished="t2")
    store.add(_revision(2, text), text)
    store.promote(2, finished="t3")
    statuses = [(r.number, r.status) for r in store.revisions()]
    assert statuses == [(1, "superseded"), (2, "deployed")]
    assert store.current_path.read_text() == text
    assert (store.root / ".gitignore").read_text().count("lock") == 1
    with pytest.raises(UnknownRevision):
        store.get("../../etc/passwd")
    with pytest.raises(UnknownRevision):
        store.get(7)
    overlay = store.root / "revisions/0001.yaml"
    overlay.write_text(text.replace("services", "servicez"))
    with pytest.raises(CorruptRevision, match=r"0001\.yaml"):
        store.overlay_text(store.get(1))
    assert store.overlay_text(store.get(2)) == text  # the others stay usable
    store.history_path.write_text("{not json")
    with pytest.raises(CorruptRevision, match=r"history\.json"):
        store.revisions()


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every overlay text the store parses from now on."""
    texts: list[str] = []

    def counting_parse(overlay: str) -> dict[str, object]:
        texts.append(overlay)
        return parse(overlay)

    monkeypatch.setattr("compose_rollback.overlay.parse", counting_parse)
    return texts


def test_an_overlay_read_again_is_parsed_once_and_still_verified(
    tmp_path: Path, parsed: list[str]
) -> None:
    store = RevisionStore(tmp_path / "p")
    text = _render({"web": {"image": "sha256:" + "d" * 64, "environment": {"A": "1"}}})
    store.add(_revision(1, text), text)
    first = store.overlay_data(store.get(1))
    first["services"]["web"]["environment"]["A"] = "changed by a caller"
    second = store.overlay_data(store.get(1))
    assert parsed == [text]
    assert second["services"]["web"]["environment"] == {"A": "1"}  # each caller's own copy
    overlay = store.root / "revisions/0001.yaml"
    overlay.write_text(text.replace("A: '1'", "A: '2'").replace('A: "1"', 'A: "2"'))
    assert overlay.read_text() != text
    with pytest.raises(CorruptRevision, match=r"0001\.yaml"):  # read and checked every time
        store.overlay_data(store.get(1))


def test_an_overlay_parsed_ahead_is_still_read_and_verified(
    tmp_path: Path, parsed: list[str]
) -> None:
    store = RevisionStore(tmp_path / "p")
    text = _render({"web": {"image": "sha256:" + "d" * 64}})
    store.add(_revision(1, text), text)
    store.promote(1, finished="t2")
    store.parse_ahead().join()  # the current revision's, in a thread
    assert parsed == [text]
    assert store.overlay_data(store.get(1))["services"]["web"]["image"] == "sha256:" + "d" * 64
    assert parsed == [text]  # not parsed again
    (store.root / "revisions/0001.yaml").write_text(text + "# changed\n")
    store.parse_ahead(store.get(1)).join()  # finds the file changed: leaves it to the read
    with pytest.raises(CorruptRevision, match=r"0001\.yaml"):
        store.overlay_data(store.get(1))


def test_history_round_trips(tmp_path: Path) -> None:
    store = RevisionStore(tmp_path)
    text = _render({"web": {"image": "sha256:" + "d" * 64}})
    original = _revision(1, text)
    store.add(original, text)
    assert store.revisions() == [original]
    json.loads(store.history_path.read_text())


def test_a_revision_read_is_the_one_its_constructor_makes() -> None:
    """``from_json`` fills the frozen dataclasses directly: every field, nothing more, the
    defaults of the fields an old history leaves out, and still frozen."""
    pin = Pin("web", "app:v1", "app@sha256:" + "a" * 64, "sha256:" + "b" * 64, local=False,
              retention="app:rollback-shop-bbbbbbbbbbbb")
    full = replace(_revision(3, "x"), pins={"web": pin}, message="m", user="u", host="h",
                   git="0123456789ab", restores=1, reason="r", finished="f", restored_to=2,
                   services=("web",))
    for made in (full, _revision(1, "y")):
        read = Revision.from_json(json.loads(json.dumps(made.to_json())))
        assert read == made and vars(read) == vars(made)
        assert vars(read.pins["web"]) == vars(made.pins["web"])
    oldest = {k: v for k, v in full.to_json().items()
              if k in ("number", "status", "kind", "created", "file", "sha256", "pins")}
    assert Revision.from_json(oldest) == Revision(
        number=3, status=full.status, kind="up", created=full.created, file=full.file,
        sha256=full.sha256, pins={"web": pin})
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.status = "failed"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.pins["web"].image = "x"  # type: ignore[misc]


def test_the_history_is_parsed_again_only_when_its_bytes_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RevisionStore(tmp_path / "p")
    text = _render({"web": {"image": "sha256:" + "d" * 64}})
    store.add(_revision(1, text), text)
    parsed: list[str] = []
    real_loads = json.loads

    def counting_loads(document: str | bytes, **kwargs: object) -> object:
        if isinstance(document, str) and document.startswith('{\n  "format"'):
            parsed.append(document)
        return real_loads(document, **kwargs)

    monkeypatch.setattr("compose_rollback.revisions.json.loads", counting_loads)
    store.promote(1, finished="t2")  # reads what it wrote, writes what it will read
    store.add(_revision(2, text), text)
    store.promote(2, finished="t3")
    listed = store.revisions()
    listed.append(_revision(9, text))  # each caller's own list
    assert [(r.number, r.status) for r in store.revisions()] == [(1, "superseded"),
                                                                 (2, "deployed")]
    assert parsed == []
    other = RevisionStore(store.root)  # another writer, e.g. another process
    other.update(1, message="changed elsewhere")
    assert store.get(1).message == "changed elsewhere"
    assert len(parsed) == 2  # the other store's read, then this one's of the new bytes


def test_a_revision_that_reads_back_differently_is_read_back(tmp_path: Path) -> None:
    """A caller's revision whose JSON reads back as another value (a number given as text) is
    not taken as what the file holds: the next read parses the file."""
    store = RevisionStore(tmp_path / "p")
    text = _render({"web": {"image": "sha256:" + "d" * 64}})
    odd = replace(_revision(1, text), restores="3")  # type: ignore[arg-type]
    store.add(odd, text)
    assert store.get(1).restores == 3
    assert store.revisions() == RevisionStore(store.root).revisions()


def test_lock_names_its_holder_and_is_released_by_death(tmp_path: Path) -> None:
    root = tmp_path / "p"
    with (project_lock(root, command="up"),
          pytest.raises(Locked, match=f"pid {os.getpid()}"),
          project_lock(root, command="revert")):
        pass
    # A holder that dies (SIGKILL, no cleanup) leaves the lock free and says so.
    script = ("import os,sys; sys.path.insert(0, sys.argv[2]);"
              "from compose_rollback.lock import project_lock;"
              "from pathlib import Path\n"
              "with project_lock(Path(sys.argv[1]), command='up'): os._exit(9)")
    done = subprocess.run([sys.executable, "-c", script, str(root),
                           str(Path(__file__).parents[2])], check=False)
    assert done.returncode == 9
    notices: list[str] = []
    with project_lock(root, command="up", notice=notices.append):
        pass
    assert notices and "no longer running" in notices[0]


def test_journal_reports_an_unfinished_operation(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.begin("up", revision=3)
    journal.write("apply", revision=3)
    with open(journal.path, "a") as torn:
        torn.write('{"step": "ga')  # a crash mid-write
    records = journal.unfinished()
    assert records[0]["revision"] == 3
    journal.end()
    assert journal.unfinished() == []
