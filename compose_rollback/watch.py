"""The watch window: every gate of a deployed revision kept running after the deploy.

``up --watch DURATION`` (or ``x-rollback.watch``) watches the revision it just deployed;
``docker compose rollback watch [--for DURATION]`` watches the current one, detached from any
deploy (a pipeline's post-deploy stage, a systemd unit). A failure in the window puts the
previous good revision back the way a failed gate during ``up`` does (``deploy``'s restore).

The watcher holds no lock while it watches: a manual ``revert`` or ``up`` must neither wait
for it nor fail with exit 4. It leaves a marker beside the lock instead, and an operation
that changes what runs notes itself there and sends it SIGTERM (``lock.end_watches``), which
ends the watch without acting. To act, the watcher takes the lock and checks, under it, that
nothing was recorded since the watch began and that its revision is still current: that
re-check, not the signal, is what makes it race-free (an ``up`` that began before the marker
was written, and whose rollout the watcher took for a failure, is caught by it too).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from pathlib import Path

from compose_rollback.context import Context, notice_interrupted
from compose_rollback.deploy import DeployResult, Overrides, restore_after_watch, watch_settings
from compose_rollback.durations import format_duration
from compose_rollback.errors import BadInput, NothingToWatch
from compose_rollback.gates.container import GateFailure, wait_healthy
from compose_rollback.lock import marker_path, superseded_by, watch_marker
from compose_rollback.revisions import Revision
from compose_rollback.settings import Settings


def watch(ctx: Context, *, duration: float | None, overrides: Overrides) -> DeployResult:
    """Watch the current revision for ``duration`` seconds (None: until interrupted)."""
    notice_interrupted(ctx)
    if ctx.orchestrator_name() == "swarm":
        raise BadInput("watch works with the compose orchestrator only",
                       hint="Swarm watches its own updates (update_config.monitor)")
    revisions = ctx.store.revisions()
    current = ctx.store.current(revisions)
    if current is None:
        raise NothingToWatch(ctx.project.name)
    n = current.number
    start = DeployResult("deployed", f"revision {n} is deployed", revision=n)
    return watch_revision(ctx, revision=current, newest=revisions[-1].number,
                          duration=duration, overrides=overrides, result=start)


def after_up(ctx: Context, result: DeployResult, *, duration: float | None,
             overrides: Overrides, commit: bool | None = None) -> DeployResult:
    """``up --watch``: watch the revision ``up`` deployed for ``duration`` (None: the
    revision's ``x-rollback.watch``; 0: no watch). Any other outcome is returned as it is."""
    if result.outcome != "deployed" or result.revision is None:
        return result
    revision = ctx.store.get(result.revision)
    if duration is None:
        duration = watch_settings(ctx, revision, overrides).watch
    if not duration:
        return result
    if ctx.orchestrator_name() == "swarm":
        ctx.progress("not watched: the watch window works with the compose orchestrator only")
        return result
    # ``newest`` is this revision, not what the history holds now: an operation that came
    # between the deploy's lock and this line supersedes the watch too.
    return watch_revision(ctx, revision=revision, newest=revision.number, duration=duration,
                          overrides=overrides, result=result, commit=commit)


def watch_revision(ctx: Context, *, revision: Revision, newest: int, duration: float | None,
                   overrides: Overrides, result: DeployResult,
                   commit: bool | None = None) -> DeployResult:
    """Keep every gate of ``revision`` running; act on the first failure (see the module).

    ``newest``: the newest revision recorded when the watch began; ``result``: what is
    returned, with its message and ``watch`` field updated, unless a revert happens."""
    n = revision.number
    forever = duration is None
    marker = marker_path(ctx.store.root)
    with contextlib.ExitStack() as stack:
        try:
            # Inside the try: the marker is what tells others the watch has begun, and an
            # interrupt that comes once it is visible ends the watch like any other.
            stack.enter_context(watch_marker(ctx.store.root, revision=n))
            settings = watch_settings(ctx, revision, overrides)
            window = "until interrupted" if forever else f"for {format_duration(duration or 0)}"
            ctx.progress(f"watching revision {n} {window}")
            started = time.monotonic()
            until = math.inf if duration is None else started + duration
            failure = _watch_gates(ctx, revision, settings, until=until)
        except KeyboardInterrupt:
            return _ended(ctx, result, n, marker, forever=forever)
        if failure is None:
            return replace(result, watch="passed", message=f"{result.message}; watched for "
                           f"{format_duration(duration or 0)}, no gate failed")
        elapsed = format_duration(round(time.monotonic() - started))
        failure = replace(failure, reason=f"{failure.reason} (during the watch, {elapsed} in)")
        failure = failure.masked(ctx.secrets)
        ctx.progress(f"revision {n} failed during the watch: {failure.summary()}")
        return _act(ctx, revision, newest=newest, failure=failure, overrides=overrides,
                    marker=marker, result=result, forever=forever, commit=commit)


def _watch_gates(ctx: Context, revision: Revision, settings: Settings, *,
                 until: float) -> GateFailure | None:
    """The deploy's own gate in watch mode: the revision's containers (events), probes,
    metrics, every gate kind it has; the first failure, or None at ``until``."""
    engine = ctx.engine
    restarts = {c.id: c.restart_count for c in engine.containers(ctx.project.name)}
    return wait_healthy(engine, project_name=ctx.project.name, services=sorted(revision.pins),
                        settings=settings, restarts_before=restarts, progress=ctx.progress,
                        until=until)


def _act(ctx: Context, revision: Revision, *, newest: int, failure: GateFailure,
         overrides: Overrides, marker: Path, result: DeployResult,
         forever: bool, commit: bool | None = None) -> DeployResult:
    """Under the lock, and only if nothing superseded the revision: revert it."""
    n = revision.number
    # The lock's holder is an operation that will end (an `up` the watcher saw replacing
    # containers, a prune): wait for it, then decide from what it left.
    ctx.wait_lock = math.inf
    acting = False
    try:
        with ctx.locked("watch"):
            by = superseded_by(marker) or _superseded_in_store(ctx, n, newest=newest)
            if by is not None:
                return _superseded(ctx, result, n, by)
            acting = True
            revisions = ctx.store.revisions()
            earlier = [r for r in revisions if r.status == "superseded" and r.number < n]
            done = restore_after_watch(ctx, failed=revision,
                                       previous=earlier[-1] if earlier else None,
                                       failure=failure, overrides=overrides, commit=commit)
            return replace(done, watch="failed")
    except KeyboardInterrupt:
        if acting:  # the way back was cut short: the deploy's own handling has said where
            raise
        return _ended(ctx, result, n, marker, forever=forever)


def _superseded_in_store(ctx: Context, number: int, *, newest: int) -> str | None:
    """What the store shows replaced the revision since the watch began (None: nothing)."""
    revisions = ctx.store.revisions()
    later = [r for r in revisions if r.number > newest]
    if later:
        return later[-1].kind
    current = ctx.store.current(revisions)
    if current is None or current.number != number:
        return "another operation"
    return None


def _superseded(ctx: Context, result: DeployResult, number: int, by: str) -> DeployResult:
    message = f"watch ended: revision {number} superseded by {by}"
    ctx.progress(message)
    return replace(result, watch=f"superseded by {by}", message=message)


def _ended(ctx: Context, result: DeployResult, number: int, marker: Path, *,
           forever: bool) -> DeployResult:
    """SIGINT or SIGTERM: from an operation that superseded the watch (its note is in the
    marker), or from the user. Either way nothing is reverted."""
    by = superseded_by(marker)
    if by is not None:
        return _superseded(ctx, result, number, by)
    message = f"watch ended by interrupt; revision {number} stays deployed"
    ctx.progress(message)
    # A watch with no end can only end this way (systemd stops it with SIGTERM): a success.
    # A window cut short is not one: `up --watch 10m && promote` must not promote.
    return replace(result, outcome="deployed" if forever else "watch_interrupted",
                   watch="interrupted", message=message)
