"""The commands besides ``up`` and ``revert``: history, status, diff, pin, prune, version."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compose_rollback import __version__
from compose_rollback.context import Context, author, notice_interrupted
from compose_rollback.dockerdata import ContainerState, ImageInfo, Listed, check_compose
from compose_rollback.errors import BadInput, NothingRunning, RollbackError, UnsafeStoreEntry
from compose_rollback.filecheck import check_files
from compose_rollback.lock import now_iso
from compose_rollback.pins import Pin
from compose_rollback.revisions import Revision, checksum, revision_file, shown


# -- status -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceStatus:
    """One service in ``status``: its pin, its running containers and how they drift from it."""

    service: str
    pinned: str | None
    pinned_id: str | None
    running: list[dict[str, Any]]
    drift: list[str]
    desired: int | None = None  # Swarm: the replicas the service asks for


@dataclass(frozen=True)
class StatusReport:
    """What ``status`` reports: the current revision and every service's state."""

    project: str
    current: Revision | None
    services: list[ServiceStatus]

    @property
    def drifted(self) -> bool:
        return any(s.drift for s in self.services)


def status(ctx: Context) -> StatusReport:
    """Current revision, and per service what is pinned, what runs, and any drift."""
    if ctx.orchestrator_name() == "swarm":
        notice_interrupted(ctx)
        current = ctx.store.current()
        from compose_rollback.swarm.adopt import stack_status

        return StatusReport(ctx.project.name, current, [
            ServiceStatus(**found) for found in stack_status(ctx, current.pins if current
                                                             else {})])
    # Docker answers (most of the command's time) while the store is read; the store's errors
    # come first, as before.
    asked = _Asked(ctx.engine.listing, ctx.project.name)
    notice_interrupted(ctx)
    current = ctx.store.current()
    pins: Mapping[str, Pin] = current.pins if current else {}
    containers = _project_containers(ctx, asked.result(), pins)
    report = []
    for service in sorted(set(pins) | {c.service for c in containers}):
        pin = pins.get(service)
        mine = [c for c in containers if c.service == service]
        drift = []
        if pin is None:
            drift.append("runs but is not in the current revision")
        elif not mine:
            drift.append("pinned but has no container")
        for c in mine:
            if pin is not None and c.image_id != pin.image_id:
                drift.append(f"{c.name} runs image {c.image_id[:19]}, not the pinned one")
            if c.status != "running":
                drift.append(f"{c.name} is {c.status}")
        running = [{"container": c.name, "state": c.status, "health": c.health,
                    "image_id": c.image_id} for c in mine]
        report.append(ServiceStatus(service, pin.image if pin else None,
                                    pin.image_id if pin else None, running, drift))
    return StatusReport(ctx.project.name, current, report)


def _project_containers(ctx: Context, listing: Sequence[Listed],
                  pins: Mapping[str, Pin]) -> list[Listed | ContainerState]:
    """The project's containers (not one-off runs), in ``docker ps``'s order. A line that
    says it all and shows the pinned image is taken as it is: a container that runs its pin
    costs one ``docker ps``, no ``inspect``. Every other one (stopped, drifted, made outside
    Compose) is inspected, so that what ``status`` reports as wrong is the engine's word."""
    mine = [c for c in listing if not c.oneoff]
    unsure = {c.id for c in mine if not c.conclusive or c.service not in pins
              or c.image_id != pins[c.service].image_id}
    inspected = ({c.id: c for c in ctx.engine.inspect_containers(sorted(unsure))} if unsure
                 else {})
    return [inspected[c.id] if c.id in unsure else c for c in mine
            if c.id not in unsure or c.id in inspected]


class _Asked:
    """``call(*args)`` in a thread of its own; ``result()`` waits for it (or raises what it
    raised). ``concurrent.futures`` would cost ``status`` more to import (~15 ms, with the
    ``logging`` it imports) than asking Docker beside the store saves."""

    def __init__(self, call: Callable[..., Any], *args: Any) -> None:
        self._outcome: tuple[bool, Any] | None = None

        def run() -> None:
            try:
                self._outcome = (True, call(*args))
            except BaseException as error:  # handed to the caller of result()
                self._outcome = (False, error)

        self._thread = threading.Thread(target=run, name="asked", daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        assert self._outcome is not None
        done, value = self._outcome
        if not done:
            raise value
        return value


# -- diff -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceDiff:
    """One service in ``diff``: its image before and after, and each setting that changed."""

    service: str
    image_before: str | None
    image_after: str | None
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (path, before, after)


@dataclass(frozen=True)
class DiffReport:
    """What ``diff`` reports: revisions A and B and the services that differ."""

    a: int
    b: int
    services: list[ServiceDiff]


def diff(ctx: Context, *, a: str | None, b: str | None) -> DiffReport:
    """Image and configuration changes from revision A to B (default: previous -> current)."""
    notice_interrupted(ctx)
    revisions = ctx.store.revisions()
    if a is not None and b is None:
        b_rev = ctx.store.current(revisions) or (revisions[-1] if revisions else None)
        if b_rev is None:
            raise BadInput("there are no revisions yet", hint="run `docker compose rollback up`")
        a_rev = ctx.store.get(a, revisions)
    elif a is not None and b is not None:
        a_rev, b_rev = ctx.store.get(a, revisions), ctx.store.get(b, revisions)
    else:
        if len(revisions) < 2:
            raise BadInput("diff needs two revisions", hint="there are fewer than two yet")
        current = ctx.store.current(revisions) or revisions[-1]
        earlier = [r for r in revisions if r.number < current.number
                   and r.status in ("superseded", "deployed")] or \
                  [r for r in revisions if r.number < current.number]
        if not earlier:
            raise BadInput("there is no revision before the current one to compare with",
                           hint="name two revisions: diff A B")
        a_rev, b_rev = earlier[-1], current
    before = ctx.store.overlay_data(a_rev)["services"]
    after = ctx.store.overlay_data(b_rev)["services"]
    services = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name) or {}, after.get(name) or {}
        changes = [(p, x, y) for p, x, y in _walk("", old, new) if p != "image"]
        if old.get("image") != new.get("image") or changes or not old or not new:
            services.append(ServiceDiff(name, old.get("image"), new.get("image"), changes))
    return DiffReport(a_rev.number, b_rev.number, services)


def _walk(prefix: str, old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            out.extend(_walk(path, old.get(key), new.get(key)))
        return out
    return [] if old == new else [(prefix, old, new)]


# -- pin --------------------------------------------------------------------------------------
def pin(ctx: Context, *, message: str) -> Revision:
    """Record what runs now as a revision, without deploying (adopt a running project)."""
    engine, project = ctx.engine, ctx.project
    from compose_rollback.building import project_settings, read_models, render_revision
    from compose_rollback.overlay import pinned_service

    model, snapshot = read_models(ctx)
    project_settings(ctx, snapshot)
    pins = _running_pins(ctx, model)
    services = sorted(pins)
    infos = engine.inspect_images([pins[s].image_id for s in services])
    definitions = {s: pinned_service(snapshot["services"][s], image=pins[s].image,
                                     local=pins[s].local) for s in services}
    with ctx.locked("pin"):
        revisions = ctx.store.revisions()
        number = ctx.store.next_number(revisions)
        who = author(project)
        text = render_revision(ctx, number=number, message=message or "pinned what runs",
                               restores=None, definitions=definitions, top_level=snapshot,
                               who=who)
        revision = Revision(
            number=number, status="pending", kind="pin", created=who.created,
            file=revision_file(number), sha256=checksum(text), pins=pins,
            message=" ".join((message or "pinned what runs").split()), user=who.user,
            host=who.host, git=who.git, services=tuple(services))
        # Journaled like `up`: a pin cut off after recording is marked interrupted by the
        # next command instead of staying pending for ever.
        ctx.journal.begin("pin", revision=number)
        ctx.store.add(revision, text)
        ctx.journal.write("recorded", revision=number)
        _finish_pin(ctx, number=number, pins=pins, inspected=list(infos.values()))
        return ctx.store.get(number)


def _running_pins(ctx: Context, model: Mapping[str, Any]) -> dict[str, Pin]:
    if ctx.orchestrator_name() == "swarm":
        from compose_rollback.swarm.adopt import stack_pins

        return stack_pins(ctx, model)
    project = ctx.project
    running = {c.service: c for c in ctx.engine.containers(project.name)
               if not c.oneoff and c.status == "running"}
    services = sorted(s for s in model.get("services") or {} if s in running)
    if not services:
        raise NothingRunning(project.name)
    infos = ctx.engine.inspect_images([running[s].image_id for s in services])
    from compose_rollback.pinning import pin_one  # (not for `status`: its regexes, its types)

    return {s: pin_one(s, str(model["services"][s].get("image") or f"{project.name}-{s}"),
                       infos[running[s].image_id], project=project.name) for s in services}


def _finish_pin(ctx: Context, *, number: int, pins: Mapping[str, Pin],
                inspected: Sequence[ImageInfo]) -> None:
    """Retention tags, then promote; a failure marks the revision failed (interrupted for
    Ctrl-C) while the store can still be written, and leaves the journal open otherwise."""
    from compose_rollback.pinning import keep_alive

    try:
        keep_alive(ctx.engine, pins, inspected=inspected)
        ctx.journal.write("promote", revision=number)
        ctx.store.promote(number, finished=now_iso())
    except (RollbackError, OSError, KeyboardInterrupt) as error:
        status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        why = (error.one_line() if isinstance(error, RollbackError)
               else "interrupted by the user" if isinstance(error, KeyboardInterrupt)
               else error.strerror or str(error))
        with contextlib.suppress(OSError):
            ctx.store.update(number, status=status, finished=now_iso(),
                             reason=f"pin did not finish: {why}")
            ctx.journal.end(revision=number)
        raise
    ctx.journal.end(revision=number)


# -- prune ------------------------------------------------------------------------------------
def prune(ctx: Context, *, keep: int | None) -> list[int]:
    """Drop old revisions beyond ``keep`` (never the current or the last good one)."""
    with ctx.locked("prune"):
        if keep is None:
            check_files(ctx.project)
            from compose_rollback.building import project_settings

            keep = project_settings(ctx, ctx.engine.config(ctx.project, interpolate=False)).keep
        if keep < 1:
            raise BadInput("--keep must be at least 1")
        revisions = ctx.store.revisions()
        current = ctx.store.current(revisions)
        good = [r for r in revisions if r.status == "superseded"
                and (current is None or r.number < current.number)]
        protected = {r.number for r in revisions[-keep:]}
        protected |= {r.number for r in (current, good[-1] if good else None) if r}
        doomed = [r for r in revisions if r.number not in protected]
        if not doomed:
            return []
        kept_tags = {p.retention for r in revisions if r.number in protected
                     for p in r.pins.values()}
        _check_ours(ctx, doomed)  # before anything is changed
        ctx.store.remove({r.number for r in doomed})
        stale = sorted({p.retention for r in doomed for p in r.pins.values()} - kept_tags)
        ctx.engine.untag(stale)
        return [r.number for r in doomed]


def _check_ours(ctx: Context, doomed: Sequence[Revision]) -> None:
    """The history is committed and shared: a retention tag it names is removed only if it is
    one this project makes, never ``alpine:latest`` or another project's tag."""
    from compose_rollback.pinning import is_retention_tag

    for revision in doomed:
        for pin in sorted(revision.pins.values(), key=lambda p: p.service):
            if not is_retention_tag(pin.retention, project=ctx.project.name):
                raise UnsafeStoreEntry(
                    str(ctx.store.history_path),
                    f"revision {revision.number} names {shown(pin.retention)} as the retention "
                    f"tag of service {shown(pin.service)}, which is not one of project "
                    f"{ctx.project.name}'s (repository:rollback-{ctx.project.name}-<image id>)",
                    fix=f"restore it from git (git checkout -- {ctx.store.history_path}) or "
                    "correct that entry")


# -- version ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Versions:
    """Our version and the Compose and engine versions found."""

    ours: str
    compose: str
    engine: str


def versions(ctx_engine: Any) -> Versions:
    """Our version and the compose and engine versions found; too old or missing is an error."""
    compose = ctx_engine.compose_version()
    check_compose(compose)
    return Versions(__version__, compose, ctx_engine.server_version())
