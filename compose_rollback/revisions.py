"""The revision store: overlays, history, ``current``, atomic writes.

Layout, per compose project, in the project directory (``x-rollback.dir``, default
``.rollback``)::

    .rollback/<project>/
      revisions/0001.yaml   one immutable, self-contained overlay per revision (commit these)
      current.yaml          a copy of the last good revision's overlay (commit it too)
      history.json          every revision: status, pins, reason, checksum of its overlay
      .gitignore            keeps the machine-local files below out of git
      lock, journal.jsonl   machine-local: who operates now, and the steps of that operation
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compose_rollback import jsontext
from compose_rollback.errors import CorruptRevision, UnknownRevision, UnsafeStoreEntry
from compose_rollback.pins import Pin, frozen
from compose_rollback.storefiles import LINK, is_link, read_in, read_nofollow, unlink_in
from compose_rollback.storefiles import atomic_write as atomic_write

if TYPE_CHECKING:
    import threading

FORMAT = 1
STATUSES = ("pending", "deployed", "superseded", "failed", "interrupted")
GITIGNORE = "# machine-local state of compose-rollback\nlock\njournal.jsonl\n*.tmp\n"


def checksum(text: str) -> str:
    """The sha256 history.json records for an overlay's text."""
    import hashlib  # (~4 ms of start-up that `history` does not need)

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Revision:
    """One entry of the history."""

    number: int
    status: str
    kind: str  # up, revert, pin
    created: str
    file: str  # relative to the store root
    sha256: str
    pins: Mapping[str, Pin]
    message: str = ""
    user: str = ""
    host: str = ""
    git: str = ""
    restores: int | None = None
    reason: str = ""
    finished: str = ""
    restored_to: int | None = None
    services: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number, "status": self.status, "kind": self.kind,
            "created": self.created, "finished": self.finished, "message": self.message,
            "user": self.user, "host": self.host, "git": self.git, "file": self.file,
            "sha256": self.sha256, "restores": self.restores, "reason": self.reason,
            "restored_to": self.restored_to, "services": list(self.services),
            "pins": {name: pin.to_json() for name, pin in sorted(self.pins.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Revision:
        status = str(data["status"])
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        get = data.get
        return frozen(cls, {
            "number": int(data["number"]), "status": status, "kind": str(data["kind"]),
            "created": str(data["created"]), "file": str(data["file"]),
            "sha256": str(data["sha256"]),
            "pins": {name: Pin.from_json(name, p) for name, p in dict(data["pins"]).items()},
            "message": str(get("message", "")), "user": str(get("user", "")),
            "host": str(get("host", "")), "git": str(get("git", "")),
            "restores": _opt_int(get("restores")), "reason": str(get("reason", "")),
            "finished": str(get("finished", "")), "restored_to": _opt_int(get("restored_to")),
            "services": tuple(str(s) for s in get("services", ())),
        })


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


def revision_file(number: int) -> str:
    """The one file a revision may have, relative to the store root."""
    return f"revisions/{number:04d}.yaml"


def _link_fix(path: Path) -> str:
    return f"remove the link (rm {path}) and put the real file there (from git history)"


def shown(value: str) -> str:
    """A value read from a shared file, safe for a one-line message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class RevisionStore:
    """Revisions of one compose project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.history_path = root / "history.json"
        self.current_path = root / "current.yaml"
        # Overlays already parsed, by the checksum of their text: one ``up`` reads the current
        # and the new revision several times, and each YAML parse costs more than the rest of
        # the read. The file is still read and verified every time; callers get their own copy.
        self._parsed: dict[str, dict[str, Any]] = {}
        # The history as last read or written, with its bytes: one ``up`` reads it four times
        # and writes it twice, and with 10,000 revisions each parse took 0.3 s of CPU and each
        # write 0.35 s. The file is still read every time; it is parsed again only when its
        # bytes are not the ones this store knows. A list's revisions are frozen and shared.
        self._known: tuple[bytes, tuple[Revision, ...]] | None = None
        # Each revision's text in the file, by the identity of the object it was made from
        # (kept alive here, so an id is never another object's): unchanged entries are not
        # encoded again.
        self._entries: dict[int, tuple[Revision, str, bool]] = {}

    # -- reading ----------------------------------------------------------------------------
    def revisions(self) -> list[Revision]:
        try:
            raw = read_nofollow(self.history_path, fix=_link_fix(self.history_path))
            if self._known is not None and self._known[0] == raw:
                return list(self._known[1])
            text = raw.decode("utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            raise CorruptRevision(str(self.history_path), str(error)) from error
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a compose-rollback history (format 1)")
            revisions = [Revision.from_json(r) for r in data["revisions"]]
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError,
                RecursionError) as error:
            raise CorruptRevision(str(self.history_path), str(error)[:200]) from error
        numbers = [r.number for r in revisions]
        if numbers != sorted(set(numbers)):
            raise CorruptRevision(str(self.history_path), "revision numbers out of order")
        self._known = (raw, tuple(revisions))
        return revisions

    def get(self, number: int | str, revisions: list[Revision] | None = None) -> Revision:
        revisions = self.revisions() if revisions is None else revisions
        try:
            wanted = int(str(number))
        except ValueError:
            raise UnknownRevision(str(number), [r.number for r in revisions]) from None
        for revision in revisions:
            if revision.number == wanted:
                return revision
        raise UnknownRevision(str(number), [r.number for r in revisions])

    def current(self, revisions: list[Revision] | None = None) -> Revision | None:
        """The last good revision: the newest one whose status is ``deployed``."""
        revisions = self.revisions() if revisions is None else revisions
        deployed = [r for r in revisions if r.status == "deployed"]
        return deployed[-1] if deployed else None

    def overlay_text(self, revision: Revision) -> str:
        """The overlay's text, verified against the checksum recorded in the history and
        read as an overlay."""
        return self._verified(revision)[0]

    def overlay_data(self, revision: Revision) -> dict[str, Any]:
        return self._verified(revision)[1]

    @property
    def _restore_fix(self) -> str:
        return f"restore it from git (git checkout -- {self.history_path})"

    def path_of(self, revision: Revision) -> Path:
        """The revision's overlay: always its own ``revisions/<number>.yaml``.

        history.json is committed and shared, so the path it names is input: anything else
        (``../../x``, an absolute path, another revision's file) is refused, never opened,
        applied or removed.
        """
        own = revision_file(revision.number)
        if revision.file != own:
            raise UnsafeStoreEntry(
                str(self.history_path),
                f"revision {revision.number} names the file {shown(revision.file)}, not its "
                f"own {own} inside the store", fix=self._restore_fix + " or correct that entry")
        return self.root / own

    def _verified(self, revision: Revision, *, parse: bool = True
                  ) -> tuple[str, dict[str, Any]]:
        path = self.path_of(revision)
        try:
            raw = read_in(path.parent, path.name, fix=_link_fix(path))
            # Universal newlines, as the checksum has always been taken of the text read.
            text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except OSError as error:
            raise CorruptRevision(str(path), error.strerror or "cannot be read") from error
        except UnicodeDecodeError as error:
            raise CorruptRevision(str(path), "it is not UTF-8 text") from error
        if checksum(text) != revision.sha256:
            raise CorruptRevision(str(path), "its checksum does not match history.json")
        if not parse:
            return text, {}
        from compose_rollback.overlay import OverlayError
        from compose_rollback.overlay import parse as parse_overlay

        parsed = self._parsed.get(revision.sha256)
        if parsed is None:
            try:
                parsed = self._parsed[revision.sha256] = parse_overlay(text)
            except OverlayError as error:
                raise CorruptRevision(str(path), str(error)) from error
        return text, copy.deepcopy(parsed)

    def parse_ahead(self, revision: Revision | None = None) -> threading.Thread:
        """Parse ``revision``'s overlay (default: the current revision's, and the history) in
        a thread, while the caller waits on Docker: a pure-Python YAML parse, 0.02-0.1 s of
        CPU. Every later read still reads and verifies the file, and uses this parse only for
        the bytes it was made of; a problem found here is left for that read to report."""

        def parse() -> None:
            with contextlib.suppress(Exception):
                wanted = self.current() if revision is None else revision
                if wanted is not None:
                    self._verified(wanted)

        import threading  # (`up` has it already; `history` need not import it)

        thread = threading.Thread(target=parse, name="parse-ahead", daemon=True)
        thread.start()
        return thread

    def overlay_path(self, number: int) -> Path:
        return self.root / revision_file(number)

    def next_number(self, revisions: list[Revision]) -> int:
        """After every recorded revision and every file on disk: a file left by a crash
        between writing an overlay and recording it is never overwritten."""
        try:
            names = [entry.name for entry in (self.root / "revisions").iterdir()]
        except (FileNotFoundError, NotADirectoryError):
            names = []
        on_disk = [int(name[:-5]) for name in names
                   if name.endswith(".yaml") and name[:-5].isdigit()]
        return max([0, *(r.number for r in revisions), *on_disk]) + 1

    # -- writing ----------------------------------------------------------------------------
    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            atomic_write(ignore, GITIGNORE)

    def save(self, revisions: list[Revision]) -> None:
        """Write the history: the text of ``json.dumps({"format": 1, "revisions": [...]},
        indent=2, sort_keys=True)``, each revision's part encoded once per store."""
        read = {id(r) for r in self._known[1]} if self._known is not None else set()
        entries: dict[int, tuple[Revision, str, bool]] = {}
        parts: list[str] = []
        for revision in revisions:
            entry = self._entries.get(id(revision))
            if entry is None or entry[0] is not revision:
                data = revision.to_json()
                # Faithful: reading the text back gives this very revision (one this store
                # read does; a caller's "3" for a number reads back as 3, so the next read
                # parses the file instead of answering with what it was given).
                faithful = (id(revision) in read
                            or Revision.from_json(json.loads(json.dumps(data))) == revision)
                entry = (revision, jsontext.dumps(data, pad="    "), faithful)
            entries[id(revision)] = entry
            parts.append(entry[1])
        listed = "[\n    " + ",\n    ".join(parts) + "\n  ]" if parts else "[]"
        text = f'{{\n  "format": {FORMAT},\n  "revisions": {listed}\n}}\n'
        atomic_write(self.history_path, text)
        self._entries = entries
        self._known = None
        if all(faithful for _, _, faithful in entries.values()):
            self._known = (text.encode("utf-8"), tuple(revisions))

    def add(self, revision: Revision, overlay: str) -> list[Revision]:
        """Write the overlay (never overwriting one) and append the revision as given."""
        self.ensure()
        revisions = self.revisions()
        path = self.path_of(revision)
        self._check_not_link(path.parent)
        if path.exists() or is_link(path):
            raise CorruptRevision(str(path), "a revision file with this number already exists")
        atomic_write(path, overlay)
        revisions.append(revision)
        self.save(revisions)
        return revisions

    def update(self, number: int, **changes: Any) -> list[Revision]:
        revisions = [replace(r, **changes) if r.number == number else r
                     for r in self.revisions()]
        self.save(revisions)
        return revisions

    def promote(self, number: int, *, finished: str) -> list[Revision]:
        """Make ``number`` the current revision; the one before it becomes superseded."""
        revisions = [
            replace(r, status="superseded") if r.status == "deployed" and r.number != number
            else replace(r, status="deployed", finished=finished) if r.number == number
            else r
            for r in self.revisions()
        ]
        self.save(revisions)
        promoted = self.get(number, revisions)
        # Checksum only: these are the bytes validated when the revision was recorded.
        atomic_write(self.current_path, self._verified(promoted, parse=False)[0])
        return revisions

    def remove(self, numbers: set[int]) -> None:
        """Drop revisions (``prune``): history first, then their files. Every path is checked
        before anything is changed, and files are removed only inside ``revisions/``."""
        revisions = self.revisions()
        doomed = [r for r in revisions if r.number in numbers]
        files = [self.path_of(r) for r in doomed]
        directory = self.root / "revisions"
        self._check_not_link(directory)
        for path in files:
            self._check_not_link(path)
        self.save([r for r in revisions if r.number not in numbers])
        unlink_in(directory, [p.name for p in files], fix=_link_fix(directory))

    def _check_not_link(self, path: Path) -> None:
        if is_link(path):
            raise UnsafeStoreEntry(str(path), LINK, fix=_link_fix(path))

