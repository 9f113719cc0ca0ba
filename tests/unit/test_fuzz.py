"""Issue 5: property tests for the readers and writers that face hand-edited or torn files
(the global-flag splitter's are in ``test_fuzz_argv.py``).

Extends ``test_store.py`` (overlay round trip, ``parse`` on short text) and
``test_plugin_argv.py`` (compose globals from a small alphabet) without repeating them:

- the history reader on arbitrary bytes, on JSON of any shape, on mutated and on truncated
  histories: it loads or raises ``CorruptRevision``, nothing else;
- the history writer and reader: any revision list survives ``save`` + ``revisions()`` and
  ``to_json``/``from_json`` (through real JSON text), and no strict prefix of a written history
  reads as valid;
- the overlay reader on YAML-shaped text, deep nesting and tags: only ``OverlayError``;
- the journal reader on arbitrary bytes: a list of records, never an exception.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from compose_rollback import commands
from compose_rollback.context import Context
from compose_rollback.errors import BadInput, CorruptRevision
from compose_rollback.lock import Journal
from compose_rollback.overlay import OverlayError, parse
from compose_rollback.pins import Pin
from compose_rollback.project import Project
from compose_rollback.revisions import STATUSES, Revision, RevisionStore, checksum

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# -- strategies -------------------------------------------------------------------------------

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
_json = st.recursive(_json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)

_hexid = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64).map(
    lambda h: f"sha256:{h}")
_opt_int = st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**40))


@st.composite
def _pin(draw: st.DrawFn, service: str) -> Pin:
    image_id = draw(_hexid)
    local = draw(st.booleans())
    ref = draw(st.text(max_size=30))
    image = image_id if local else f"{ref}@{draw(_hexid)}"
    return Pin(service, ref, image, image_id, local=local, retention=draw(st.text(max_size=40)))


@st.composite
def _revision(draw: st.DrawFn, number: int | None = None) -> Revision:
    names = draw(st.lists(st.text(min_size=1, max_size=10), max_size=4, unique=True))
    pins = {name: draw(_pin(name)) for name in names}
    text = st.text(max_size=40)
    return Revision(
        number=draw(st.integers(min_value=0, max_value=10**9)) if number is None else number,
        status=draw(st.sampled_from(STATUSES)), kind=draw(st.sampled_from(["up", "revert",
                                                                             "pin"])),
        created=draw(text), file=draw(text), sha256=draw(text), pins=pins,
        message=draw(text), user=draw(text), host=draw(text), git=draw(text),
        restores=draw(_opt_int), reason=draw(text), finished=draw(text),
        restored_to=draw(_opt_int),
        services=tuple(draw(st.lists(st.text(max_size=10), max_size=4))),
    )


@st.composite
def _history(draw: st.DrawFn, min_size: int = 0) -> list[Revision]:
    numbers = sorted(draw(st.sets(st.integers(min_value=1, max_value=10**6), min_size=min_size,
                                  max_size=5)))
    return [draw(_revision(n)) for n in numbers]


def _history_bytes(revisions: list[Revision]) -> bytes:
    data = {"format": 1, "revisions": [r.to_json() for r in revisions]}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _read(tmp_path: Path, data: bytes) -> list[Revision] | None:
    """Read ``data`` as history.json: the revisions, or None for ``CorruptRevision``.

    Anything else (UnicodeDecodeError, RecursionError, OverflowError, ...) propagates and
    fails the test: a user must get one line naming the file, not a traceback.
    """
    store = RevisionStore(tmp_path / "store")
    store.root.mkdir(exist_ok=True)
    store.history_path.write_bytes(data)
    try:
        return store.revisions()
    except CorruptRevision as error:
        assert "history.json" in error.one_line()
        return None


# -- the history reader -----------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"\xff\xfe{}")  # not UTF-8
@example(data=b"\x00" * 64)  # a file extended with zeros by a crash
@example(data=b"[" * 50_000)  # nesting deeper than the JSON decoder's recursion
@example(data=b'{"format": 1, "revisions": [{"number": Infinity}]}')
@example(data=b"")
def test_history_reader_on_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    _read(tmp_path, data)


@FUZZ
@given(value=_json)
def test_history_reader_on_json_of_any_shape(tmp_path: Path, value: Any) -> None:
    for document in (value, {"format": 1, "revisions": value},
                     {"format": 1, "revisions": [value]}):
        _read(tmp_path, json.dumps(document).encode())


_FIELDS = ["number", "status", "kind", "created", "finished", "message", "user", "host", "git",
           "file", "sha256", "restores", "reason", "restored_to", "services", "pins"]


@FUZZ
@given(revisions=_history(min_size=1), index=st.integers(min_value=0),
       field_name=st.sampled_from(_FIELDS), replacement=st.one_of(st.none(), _json),
       delete=st.booleans())
@example(revisions=[Revision(1, "deployed", "up", "t", "f", "s", {})], index=0,
         field_name="number", replacement=float("inf"), delete=False)
@example(revisions=[Revision(1, "deployed", "up", "t", "f", "s", {})], index=0,
         field_name="restores", replacement=-float("inf"), delete=False)
@example(revisions=[Revision(1, "deployed", "up", "t", "f", "s", {})], index=0,
         field_name="pins", replacement={"web": {"ref": 1}}, delete=False)
def test_history_reader_on_one_edited_field(
    tmp_path: Path, revisions: list[Revision], index: int, field_name: str,
    replacement: Any, delete: bool,
) -> None:
    """A hand edit of one field of one revision: loads, or is reported as corrupt."""
    data = json.loads(_history_bytes(revisions))
    entry = data["revisions"][index % len(revisions)]
    if delete:
        entry.pop(field_name, None)
    else:
        entry[field_name] = replacement
    _read(tmp_path, json.dumps(data).encode())


@FUZZ
@given(revisions=_history(), position=st.integers(min_value=0), byte=st.integers(0, 255))
def test_history_reader_on_a_flipped_byte(tmp_path: Path, revisions: list[Revision],
                                          position: int, byte: int) -> None:
    data = bytearray(_history_bytes(revisions))
    data[position % len(data)] = byte
    _read(tmp_path, bytes(data))


@FUZZ
@given(revisions=_history(), cut=st.integers(min_value=0))
def test_no_strict_prefix_of_a_history_reads_as_valid(
    tmp_path: Path, revisions: list[Revision], cut: int
) -> None:
    """A half-written history can never be read as valid (the writer's atomicity aside)."""
    data = _history_bytes(revisions)
    complete = len(data.rstrip())
    cut %= complete
    assert _read(tmp_path, data[:cut]) is None


# -- the history writer and reader together ----------------------------------------------------


@FUZZ
@given(revision=_revision())
def test_revision_json_round_trip(revision: Revision) -> None:
    through_text = json.loads(json.dumps(revision.to_json()))
    assert Revision.from_json(through_text) == revision
    assert Revision.from_json(revision.to_json()).to_json() == revision.to_json()


@FUZZ
@given(revisions=_history())
def test_history_save_then_read_round_trips(tmp_path: Path, revisions: list[Revision]) -> None:
    store = RevisionStore(tmp_path / "store")
    store.save(revisions)
    assert store.revisions() == revisions
    assert store.history_path.read_bytes() == _history_bytes(revisions)  # deterministic bytes
    assert not [p for p in store.root.iterdir() if p.name != "history.json"]  # no temp files


_change = st.tuples(st.sampled_from(["replace", "append", "drop", "elsewhere"]),
                    st.integers(min_value=0), _revision())


@settings(FUZZ, max_examples=60)
@given(first=_history(), changes=st.lists(_change, min_size=1, max_size=4))
def test_a_store_reads_what_a_new_store_reads_after_its_own_writes_and_others(
    tmp_path: Path, first: list[Revision], changes: list[tuple[str, int, Revision]]
) -> None:
    """The store answers a read of the bytes it last read or wrote without parsing them
    again, and encodes each unchanged revision once: whatever it wrote, and whatever another
    writer (another store, another process) put in the file meanwhile, it reads exactly what a
    store that never saw the file reads, and the file holds exactly json.dumps' text."""
    store = RevisionStore(tmp_path / "store")
    store.save(first)
    for change, index, revision in changes:
        current = store.revisions()
        if change == "replace" and current:
            index %= len(current)
            current[index] = replace(revision, number=current[index].number)
            store.save(current)
        elif change == "append":
            store.save([*current, replace(revision, number=max([0, *(r.number for r in
                                                                       current)]) + 1)])
        elif change == "drop" and current:
            del current[index % len(current)]
            store.save(current)
        elif change == "elsewhere":
            RevisionStore(store.root).save([replace(r, message=r.message + "!")
                                            for r in current])
        fresh = RevisionStore(store.root).revisions()
        assert store.revisions() == fresh
        assert store.history_path.read_bytes() == _history_bytes(fresh)


# -- hostile histories: paths and tags that lead out of the store -----------------------------

#: What every file outside the store holds: a valid overlay whose checksum each hostile
#: revision records, so a reader that followed a path or a link out would accept it.
OUTSIDE = "services:\n  web:\n    image: sha256:" + "1" * 64 + "\n"

_hostile_path = st.one_of(
    st.sampled_from([
        "../../x", "../x", "..", ".", "", "/", "@ABS@", "@ABS@/../x", "revisions/../../x",
        "revisions/../../../x", "revisions/0001.yaml\x00", "revisions/0001.yaml\x00/../../x",
        "revisions\\..\\..\\x", "..\\..\\x", "revisions/0001.yaml/", "revisions//0001.yaml",
        "./revisions/0001.yaml", "revisions/./0001.yaml", "~/x", "revisions/" + "a" * 300,
        "a/" * 2000, "revisions/0002.yaml", "history.json", "lock", "journal.jsonl",
        "revisions", "current.yaml", "revisions/0001.yaml\n", " revisions/0001.yaml",
    ]),
    st.lists(st.sampled_from(["..", ".", "revisions", "0001.yaml", "0002.yaml", "", "\\",
                              "\x00", "x" * 300, "~", "@ABS@"]), max_size=8).map("/".join),
    st.text(max_size=30),
)
_layout = st.sampled_from(["file", "link", "absent"])


@st.composite
def _hostile_history(draw: st.DrawFn) -> list[tuple[Revision, str]]:
    """Revisions (numbers 1..3, some at their own path, some not), each with the layout of
    its own file on disk: a regular file, a link out of the store, or nothing."""
    out = []
    for number in sorted(draw(st.sets(st.integers(1, 3), min_size=1))):
        own = f"revisions/{number:04d}.yaml"
        path = draw(st.one_of(st.just(own), _hostile_path))
        out.append((Revision(number, draw(st.sampled_from(STATUSES)), "up", "t", path,
                             checksum(OUTSIDE), {}), draw(_layout)))
    return out


def _hostile_world(tmp_path: Path, history: list[tuple[Revision, str]], *,
                   linked_dir: bool) -> tuple[RevisionStore, dict[Path, bytes]]:
    """A store two levels below a fresh directory; the files around it it must never touch."""
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    store = RevisionStore(base / "a" / "b" / "store")
    (store.root / "revisions").mkdir(parents=True)
    outside = {base / "x": b"", base / "a" / "x": b"", base / "a" / "b" / "x": b"",
               base / "outside.yaml": b"", base / "elsewhere" / "0001.yaml": b"",
               base / "elsewhere" / "0002.yaml": b"", base / "elsewhere" / "0003.yaml": b""}
    for path in outside:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OUTSIDE)
        outside[path] = path.read_bytes()
    for revision, layout in history:
        own = store.root / f"revisions/{revision.number:04d}.yaml"
        if layout == "file":
            own.write_text(OUTSIDE)
        elif layout == "link":
            own.symlink_to(base / "outside.yaml")
    if linked_dir:
        shutil.rmtree(store.root / "revisions")
        (store.root / "revisions").symlink_to(base / "elsewhere")
    entries = [replace(r, file=r.file.replace("@ABS@", str(base / "x"))) for r, _ in history]
    store.save(entries)
    return store, outside


def _untouched(outside: dict[Path, bytes]) -> None:
    for path, data in outside.items():
        assert path.read_bytes() == data, f"{path} was changed"


@FUZZ
@given(history=_hostile_history(), linked_dir=st.booleans(), doomed=st.sets(st.integers(1, 3)))
@example(history=[(Revision(1, "superseded", "up", "t", "../../x", checksum(OUTSIDE), {}),
                   "file")], linked_dir=False, doomed={1})
@example(history=[(Revision(1, "superseded", "up", "t", "@ABS@", checksum(OUTSIDE), {}),
                   "file")], linked_dir=False, doomed={1})
@example(history=[(Revision(1, "superseded", "up", "t", "revisions/0001.yaml\x00",
                            checksum(OUTSIDE), {}), "file")], linked_dir=False, doomed={1})
@example(history=[(Revision(1, "superseded", "up", "t", "revisions/0001.yaml",
                            checksum(OUTSIDE), {}), "link")], linked_dir=False, doomed={1})
@example(history=[(Revision(2, "superseded", "up", "t", "revisions/0002.yaml",
                            checksum(OUTSIDE), {}), "absent")], linked_dir=True, doomed={2})
def test_hostile_history_never_leads_out_of_the_store(
    tmp_path: Path, history: list[tuple[Revision, str]], linked_dir: bool, doomed: set[int],
) -> None:
    """Paths (``..``, absolute, NUL, backslashes, very long, other files of the store) and
    links (a revision file or ``revisions/`` pointing out): reading, resolving and removing
    raise nothing but our own errors, and nothing outside the store is read or changed."""
    store, outside = _hostile_world(tmp_path, history, linked_dir=linked_dir)
    revisions = store.revisions()  # a bad entry does not make the others unreadable
    assert [r.number for r in revisions] == [r.number for r, _ in history]
    for revision, (_, layout) in zip(revisions, history, strict=True):
        own = f"revisions/{revision.number:04d}.yaml"
        try:
            path = store.path_of(revision)
        except BadInput:
            assert revision.file != own
        else:
            assert revision.file == own and path == store.root / own
        try:
            text = store.overlay_text(revision)
        except BadInput:
            continue
        # Read only when it is the revision's own, real file inside the store.
        assert (revision.file, layout, linked_dir) == (own, "file", False), text
    before = store.history_path.read_bytes()
    try:
        store.remove(doomed)
    except BadInput:
        assert store.history_path.read_bytes() == before  # refused: nothing changed
    _untouched(outside)


_PROJECTS = ["shop", "shop-x", "a"]
_hostile_tag = st.one_of(
    st.sampled_from([
        "alpine:latest", "alpine", "sha256:" + "1" * 64, "reg/app@sha256:" + "a" * 64,
        "--force", "-f", "", ":", "reg/app:rollback-other-111111111111",
        "reg/app:rollback-shop-x-111111111111", "reg/app:rollback-shop-111111111111",
        "reg/app:rollback-shop-111111111111@sha256:" + "a" * 64,
        "REG/app:rollback-shop-111111111111", "reg/app:rollback-shop-111111111111 --force",
        "reg/app:rollback-shop-111111111111\n", "127.0.0.1:5000/x/y:rollback-shop-0123456789ab",
        "../x:rollback-shop-111111111111", "-x:rollback-shop-111111111111",
        "reg/app:rollback-shop-1111111111111", "reg/app:rollback-shop-11111111111",
        "reg/app:latest:rollback-shop-111111111111", "reg/app:rollback-a-111111111111",
    ]),
    st.builds("{}:rollback-{}-{}".format,
              st.sampled_from(["reg/app", "alpine", "localhost:5000/a", "-x", "a b", "", "A"]),
              st.sampled_from([*_PROJECTS, "other", ""]),
              st.text(alphabet="0123456789abcdefg", max_size=14)),
    st.text(max_size=40),
)


class _Untagger:
    """The one engine call ``prune --keep N`` makes: remember what it would remove."""

    def __init__(self) -> None:
        self.removed: list[str] = []

    def untag(self, refs: list[str]) -> None:
        self.removed += refs


def _ours(ref: str, project: str) -> bool:
    """The oracle, written apart from the product's: ``<repository>:rollback-<project>-<12
    hex>``, a repository without spaces, digest, upper case or leading dash."""
    repo, _, tag = ref.rpartition(":")
    return (re.fullmatch(r"[a-z0-9][a-z0-9._/-]*(?::[0-9]+/[a-z0-9._/-]+)?", repo) is not None
            and ".." not in repo
            and re.fullmatch(rf"rollback-{re.escape(project)}-[0-9a-f]{{12}}", tag) is not None)


@settings(FUZZ, max_examples=80)  # each example records a few revisions, fsync and all
@given(project=st.sampled_from(_PROJECTS),
       tags=st.lists(st.lists(_hostile_tag, min_size=1, max_size=3), min_size=2, max_size=4),
       keep=st.integers(1, 3))
@example(project="shop", tags=[["alpine:latest"], ["reg/app:rollback-shop-222222222222"]],
         keep=1)
@example(project="shop", tags=[["reg/app:rollback-other-111111111111"], ["x:latest"]], keep=1)
def test_prune_never_removes_a_tag_that_is_not_this_projects(
    tmp_path: Path, project: str, tags: list[list[str]], keep: int,
) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    store = RevisionStore(base / project)
    engine = _Untagger()
    revisions = []
    for number, refs in enumerate(tags, start=1):
        pins = {f"s{i}": Pin(f"s{i}", "reg/app", "sha256:" + "1" * 64, "sha256:" + "1" * 64,
                             local=True, retention=ref) for i, ref in enumerate(refs)}
        revision = Revision(number, "superseded", "up", "t", f"revisions/{number:04d}.yaml",
                            checksum(OUTSIDE), pins)
        store.add(revision, OUTSIDE)
        revisions.append(revision)
    store.promote(len(tags), finished="t")
    ctx = Context(project=Project(name=project, directory=base, files=()), store=store,
                  progress=lambda line: None,
                  engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    before = store.history_path.read_bytes()
    try:
        pruned = commands.prune(ctx, keep=keep)
    except BadInput:
        assert store.history_path.read_bytes() == before and engine.removed == []
        return
    assert all(_ours(ref, project) for ref in engine.removed), engine.removed
    for number in pruned:  # every retention tag of a pruned revision was ours
        assert all(_ours(p.retention, project) for p in revisions[number - 1].pins.values())


# -- the overlay reader -----------------------------------------------------------------------

_YAML_TOKENS = [*"abc019 :-[]{}&*!|>'\"#\n,?%@`<=~.", "\t", "  ", "\n  ", "\n    ", "!override",
                "!reset", "!!binary ", "!!python/name:os.system ", "<<: ", "services:",
                "image: ", "&a ", "*a", "--- ", "...", "!!set ", "!!timestamp ", "!!omap ", "? "]
_yamlish = st.lists(st.sampled_from(_YAML_TOKENS), max_size=60).map("".join)


def _expect_overlay_error_only(text: str) -> None:
    try:
        data = parse(text)
    except OverlayError:
        return
    assert isinstance(data, dict) and isinstance(data["services"], dict)
    for service in data["services"].values():
        assert isinstance(service["image"], str)


@FUZZ
@given(text=_yamlish)
@example(text="[" * 1200)
@example(text="a: " + "{b: " * 1200 + "1" + "}" * 1200)
@example(text="services: !override {app: !reset {image: x}}")
@example(text="services:\n  app: {image: !!binary aGVsbG8=}\n")
@example(text="services:\n  ? [a, b]\n  : {image: x}\n")
@example(text="services:\n  app: {image: !!timestamp not-a-time}\n")
@example(text="services: &s {app: {image: x, more: *s}}\n")
@example(text="services:\n  app:\n    <<: {image: x}\n    <<: {image: y}\n")
@example(text="%YAML 9.9\n--- {services: {}}\n")
def test_overlay_parse_on_yaml_shaped_text(text: str) -> None:
    _expect_overlay_error_only(text)


@FUZZ
@given(value=_json)
def test_overlay_parse_on_any_document(value: Any) -> None:
    """Any JSON (which is YAML) as an overlay, or as its services, or as one service."""
    for document in (value, {"services": value}, {"services": {"app": value}}):
        _expect_overlay_error_only(json.dumps(document))


# -- the journal reader -----------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=300), lines=st.lists(_json, max_size=4))
@example(data=b"\xff\xfe\n", lines=[])  # not UTF-8
@example(data=b"", lines=[1, "end", None, [{"step": "end"}]])  # JSON lines that are no records
def test_journal_reader_never_raises(tmp_path: Path, data: bytes, lines: list[Any]) -> None:
    """``recover()`` reads the journal before every locked command: garbage must not stop it."""
    journal = Journal(tmp_path)
    text = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    journal.path.write_bytes(data + text)
    records = journal.unfinished()
    assert isinstance(records, list)
    assert all(isinstance(r, dict) for r in records)
