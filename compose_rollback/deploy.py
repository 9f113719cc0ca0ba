"""The deploy transaction: plan -> pin -> record -> apply -> gate -> commit | restore.

``up`` and ``revert`` both end in ``_transaction``: the new revision is applied and gated; if a
gate fails (or the user interrupts) the last good revision is applied and gated again, and the
result says which of the outcomes of the behaviour contract happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Literal

# (re-exported: the types of what up and revert take and give)
from compose_rollback.building import Change as Change
from compose_rollback.building import Overrides as Overrides
from compose_rollback.building import (
    check_images_present,
    compose_revision,
    mask_secrets,
    plan_changes,
    project_settings,
    read_models,
    record,
    render_revision,
    revision_settings,
)
from compose_rollback.context import Context, author, commit_wanted
from compose_rollback.errors import (
    BadInput,
    HookFailed,
    NoEarlierRevision,
    RollbackError,
    UnknownService,
)
from compose_rollback.gates.container import GateFailure
from compose_rollback.hooks import hook_env, notify, payload, run_hook
from compose_rollback.interpolate import as_written
from compose_rollback.lock import now_iso
from compose_rollback.reading import Reading
from compose_rollback.revisions import Revision
from compose_rollback.rollout.base import Interrupted
from compose_rollback.rollout.base import Outcome as RolloutOutcome
from compose_rollback.rollout.orchestrator import orchestrator_for
from compose_rollback.rollout.report import StepReport
from compose_rollback.selection import deployed_services
from compose_rollback.settings import Settings

#: What a deploy ended in; the CLI alone decides which exit code each one is.
#: ``failed``: left in place (``--no-rollback``); ``unrestored``: failed and nothing good could
#: be put back (no earlier revision, or its restore failed too): a person must look.
#: ``watch_interrupted``: deployed, but the watch after it was cut short by the user.
Outcome = Literal["deployed", "rolled_back", "failed", "unrestored", "dry_run",
                  "watch_interrupted"]


@dataclass(frozen=True)
class DeployResult:
    """What happened: the outcome, a one-line message, and the revisions involved."""

    outcome: Outcome
    message: str
    revision: int | None = None
    restored: int | None = None
    failure: GateFailure | None = None
    plan: Sequence[Change] = field(default=())
    overlay: str = ""
    #: A dry run's images that would be built or pulled first: service -> "build" | "pull".
    actions: Mapping[str, str] = field(default_factory=dict)
    #: The rollout's steps and how each ended, forward then back (a restore's), in order.
    steps: Sequence[StepReport] = field(default=())
    #: The git commit that recorded the decided revision (``--commit``, ``x-rollback.git``).
    commit: str | None = None
    #: How the watch after the deploy ended (watch.py); empty when there was none.
    watch: str = ""


def up(
    ctx: Context, *, services: Sequence[str], build: bool, pull: str | None, message: str,
    overrides: Overrides, rollback: bool, dry_run: bool, commit: bool | None = None,
    reading: Reading | None = None,
) -> DeployResult:
    """Pin, record and deploy the project as its compose files describe it now (``reading``:
    its models, when the caller started reading them already)."""
    project = ctx.project
    ctx.store.parse_ahead()  # the current revision, read again under the lock
    model, snapshot = read_models(ctx, reading)
    mask_secrets(ctx, snapshot)
    settings = overrides.apply(project_settings(ctx, snapshot))
    everything = sorted(model.get("services") or {})
    unknown = sorted(set(services) - set(everything))
    if unknown:
        raise UnknownService(unknown, everything)
    if not everything:
        raise BadInput("the project defines no services", hint="add services to compose.yaml")
    if dry_run:
        return _plan_only(ctx, model=model, snapshot=snapshot, services=services, build=build,
                          pull=pull, message=message)
    with ctx.locked("up"), ThreadPoolExecutor(max_workers=1) as pool:
        before = pool.submit(_restart_counts, ctx)  # side by side with pinning and recording
        revisions = ctx.store.revisions()
        current = ctx.store.current(revisions)
        number = ctx.store.next_number(revisions)
        env = hook_env(project=project.name, revision=number,
                       previous=current.number if current else None, status="pending")
        code = run_hook("pre_up", settings.hooks.pre_up, cwd=project.directory, env=env,
                        progress=ctx.progress)
        if code != 0:
            raise HookFailed("pre_up", as_written(settings.hooks.pre_up or ""), code)
        if current is not None:
            mask_secrets(ctx, ctx.store.overlay_data(current))
        settings = overrides.apply(project_settings(ctx, snapshot, revision=number))
        definitions, pins, changes, inspected, _ = compose_revision(
            ctx, model=model, snapshot=snapshot, services=services, build=build, pull=pull,
            current=current, number=number,
        )
        who = author(project)  # one reading for the file's header and the history
        text = render_revision(ctx, number=number, message=message, restores=None,
                               definitions=definitions, top_level=snapshot, who=who)
        orchestrator_for(ctx).check(pins=pins, text=text)  # Swarm refuses local images
        ctx.journal.begin("up", revision=number)
        revision = record(ctx, who, number=number, kind="up", text=text, pins=pins,
                           message=message, restores=None,
                           gated=[s for s in deployed_services(model, services) if s in pins],
                           inspected=inspected)
        return _transaction(ctx, revision=revision, previous=current, settings=settings,
                            overrides=overrides, rollback=rollback, plan=changes,
                            before=before, commit=settings.git == "commit"
                            if commit is None else commit)


def revert(ctx: Context, *, to: str | None, message: str, overrides: Overrides,
           commit: bool | None = None) -> DeployResult:
    """Reapply the last good revision before the current one (or ``to``: a revision number,
    or a git revision that recorded one) as a new revision."""
    wanted = commit_wanted(ctx.project, commit)
    with ctx.locked("revert"), ThreadPoolExecutor(max_workers=1) as pool:
        before = pool.submit(_restart_counts, ctx)
        revisions = ctx.store.revisions()
        current = ctx.store.current(revisions)
        if to is not None:
            target = ctx.store.get(_revision_number(ctx, to, revisions), revisions)
        else:
            earlier = [r for r in revisions if r.status == "superseded"
                       and (current is None or r.number < current.number)]
            if not earlier:
                raise NoEarlierRevision(current.number if current else None)
            target = earlier[-1]
        data = ctx.store.overlay_data(target)
        mask_secrets(ctx, data, *([ctx.store.overlay_data(current)] if current else []))
        number = ctx.store.next_number(revisions)
        settings = revision_settings(ctx, target, overrides, revision_number=number)
        inspected = check_images_present(ctx, target.pins)
        message = message or f"revert to revision {target.number}"
        who = author(ctx.project)
        text = render_revision(ctx, number=number, message=message, restores=target.number,
                               definitions=data["services"], top_level=data, who=who)
        orchestrator_for(ctx).check(pins=target.pins, text=text)
        ctx.journal.begin("revert", revision=number, restores=target.number)
        revision = record(ctx, who, number=number, kind="revert", text=text,
                           pins=target.pins, message=message, restores=target.number,
                           gated=sorted(s for s in data["services"] if s in target.pins),
                           inspected=inspected)
        plan = plan_changes(current.pins if current else {}, target.pins,
                        ctx.store.overlay_data(current)["services"] if current else {},
                        data["services"])
        return _transaction(ctx, revision=revision, previous=current, settings=settings,
                            overrides=overrides, rollback=True, plan=plan, before=before,
                            commit=wanted)


def _revision_number(ctx: Context, to: str, revisions: Sequence[Revision]) -> str:
    """``--to``: a number is a revision number; anything else a git revision (``HEAD~3``, a
    commit id, a tag) naming the commit that recorded the revision."""
    if to.strip().isdigit():
        return to
    from compose_rollback.gitstore import revision_of

    return str(revision_of(to, directory=ctx.project.directory, store=ctx.store.root,
                           known={r.number: r for r in revisions}))


def _plan_only(ctx: Context, *, model: Mapping[str, Any], snapshot: Mapping[str, Any],
               services: Sequence[str], build: bool, pull: str | None,
               message: str) -> DeployResult:
    revisions = ctx.store.revisions()
    current = ctx.store.current(revisions)
    number = ctx.store.next_number(revisions)
    definitions, pins, changes, _, actions = compose_revision(
        ctx, model=model, snapshot=snapshot, services=services, build=build, pull=pull,
        current=current, dry_run=True, number=number)
    text = render_revision(ctx, number=number, message=message, restores=None,
                           definitions=definitions, top_level=snapshot)
    orchestrator_for(ctx).check(pins=pins, text=text)  # what up would refuse, it says now
    return DeployResult("dry_run", f"dry run: revision {number} not recorded",
                        revision=number, plan=changes, overlay=text, actions=actions)


# -- the transaction --------------------------------------------------------------------------
def _restart_counts(ctx: Context) -> dict[str, int]:
    """Restart count of every container of the project, before a revision is applied."""
    return {c.id: c.restart_count for c in ctx.engine.containers(ctx.project.name)}


def _apply_and_gate(ctx: Context, revision: Revision, settings: Settings, *,
                    leaving: Revision | None, back: bool,
                    before: Future[dict[str, int]] | None = None,
                    leaving_failed: bool = False) -> RolloutOutcome:
    restarts = before.result() if before is not None else _restart_counts(ctx)
    if not back:  # a deploy's revision is read again after its gates (its watch setting)
        ctx.store.parse_ahead(revision)
    ctx.journal.write("apply", revision=revision.number)
    ctx.applied = True
    ctx.progress(f"applying revision {revision.number}")
    return orchestrator_for(ctx).roll_out(revision=revision, leaving=leaving,
                                          settings=settings, back=back, restarts=restarts,
                                          leaving_failed=leaving_failed)


def _transaction(
    ctx: Context, *, revision: Revision, previous: Revision | None, settings: Settings,
    overrides: Overrides, rollback: bool, plan: Sequence[Change],
    before: Future[dict[str, int]] | None = None, commit: bool = False,
) -> DeployResult:
    """Apply and gate ``revision``; restore ``previous`` on failure; commit the store to git
    when asked; run hooks on the result."""
    result = replace(_settle(ctx, revision=revision, previous=previous, settings=settings,
                             overrides=overrides, rollback=rollback, plan=plan, before=before),
                     steps=tuple(ctx.steps))
    if commit and result.revision is not None:  # before the hooks, so post_up may push it
        from compose_rollback.gitstore import commit_decision

        result = replace(result, commit=commit_decision(
            project=ctx.project, store=ctx.store, number=result.revision,
            progress=ctx.progress))
    _announce(ctx, settings, result, previous)
    return result


def _announce(ctx: Context, settings: Settings, result: DeployResult,
              previous: Revision | None) -> None:
    failure = result.failure
    reason = failure.summary() if failure else ""
    status = "deployed" if result.outcome == "deployed" else "failed"
    env = hook_env(project=ctx.project.name, revision=result.revision,
                   previous=previous.number if previous else None, status=result.outcome,
                   reason=reason)
    hooks = settings.hooks
    names = {"deployed": ["post_up"], "rolled_back": ["on_failure", "on_rollback"]}
    for name in names.get(result.outcome, ["on_failure"]):
        run_hook(name, getattr(hooks, name), cwd=ctx.project.directory, env=env,
                 progress=ctx.progress)
    notify(hooks.webhook, payload(
        project=ctx.project.name, revision=result.revision,
        previous=previous.number if previous else None, outcome=result.outcome,
        status=status, restored=result.restored, reason=reason,
        service=failure.service if failure else ""), progress=ctx.progress,
        body_format=hooks.webhook_format)


def _settle(
    ctx: Context, *, revision: Revision, previous: Revision | None, settings: Settings,
    overrides: Overrides, rollback: bool, plan: Sequence[Change],
    before: Future[dict[str, int]] | None,
) -> DeployResult:
    n = revision.number
    status = "failed"
    discard: tuple[str, ...] = ()
    action, touched = "rollback", True
    try:
        outcome = _apply_and_gate(ctx, revision, settings, leaving=previous,
                                  back=revision.kind == "revert", before=before)
        failure, discard, action = outcome.failure, outcome.discard, outcome.action
        touched = outcome.touched
    except KeyboardInterrupt as stop:
        failure = GateFailure("", "", "interrupted by the user")
        status = "interrupted"
        if isinstance(stop, Interrupted):  # mid-step: its unproven containers are killed
            discard, touched = stop.outcome.discard, stop.outcome.touched
    except RollbackError as error:  # e.g. the engine stopped answering mid-deploy
        failure = GateFailure("", "", error.one_line())
    except Exception as error:  # an OSError, a bug: still put the good one back
        failure = _unexpected(error)
    if failure is not None:  # what the app printed goes into history, hooks and webhooks
        failure = failure.masked(ctx.secrets)
    if failure is None:
        ctx.store.promote(n, finished=now_iso())
        ctx.journal.end(revision=n, outcome="deployed")
        return DeployResult("deployed", f"revision {n} deployed and healthy",
                            revision=n, plan=plan)
    reason = failure.summary()
    ctx.progress(f"revision {n} failed: {reason}")
    if action != "rollback" and rollback:
        return _stay(ctx, revision=revision, status=status, failure=failure, action=action,
                     plan=plan)
    if not rollback or previous is None:
        ctx.store.update(n, status=status, reason=reason, finished=now_iso())
        ctx.journal.end(revision=n, outcome="unrestored" if rollback else "failed")
        if not rollback:
            return DeployResult("failed",
                                f"revision {n} failed: {reason}; left in place (--no-rollback)",
                                revision=n, failure=failure, plan=plan)
        return DeployResult(
            "unrestored",
            f"revision {n} failed: {reason}; there is no earlier good revision to restore, so "
            "its containers are left as they are for inspection", revision=n,
            failure=failure, plan=plan)
    return _restore(ctx, failed=revision, status=status, failure=failure, previous=previous,
                    overrides=overrides, plan=plan, discard=discard, touched=touched)


def _stay(ctx: Context, *, revision: Revision, status: str, failure: GateFailure, action: str,
          plan: Sequence[Change]) -> DeployResult:
    """``failure_action: pause|continue``: no way back; say exactly what runs."""
    n, reason = revision.number, failure.summary()
    ctx.store.update(n, status=status, reason=reason, finished=now_iso())
    ctx.journal.end(revision=n, outcome="failed")
    runs = orchestrator_for(ctx).what_runs() or "nothing"
    word = "paused" if action == "pause" else "went on past the failure"
    return DeployResult("failed",
                        f"revision {n} failed: {reason}; {word} (failure_action: {action}), "
                        f"not rolled back; running now: {runs}", revision=n, failure=failure,
                        plan=plan)


def _unexpected(error: Exception) -> GateFailure:
    """An error no gate foresaw, as a failed gate: the type and the text, on one line."""
    detail = " ".join(str(error).split())[:300]
    return GateFailure("", "", f"unexpected error: {type(error).__name__}"
                       + (f": {detail}" if detail else ""))


def _restore(ctx: Context, *, failed: Revision, status: str, failure: GateFailure,
             previous: Revision, overrides: Overrides, plan: Sequence[Change],
             discard: Sequence[str] = (), touched: bool = True) -> DeployResult:
    n, p = failed.number, previous.number
    reason = failure.summary()
    ctx.journal.write("restore", revision=n, restores=p)
    ctx.progress(f"restoring revision {p}")
    try:
        # A release that failed its gates is owed no graceful shutdown: kill it first, so the
        # way back never waits for its stop_grace_period.
        orchestrator_for(ctx).discard(revision=failed, leaving=previous, services=discard)
        # Metric gates judge a window of the past that still holds the failed revision's
        # errors (and need a Prometheus that may be what failed), and an alert the failed
        # revision raised stays active for a while after it is gone: a restore is judged by
        # its containers and probes only.
        settings = (revision_settings(ctx, previous, overrides).without_gates("prometheus")
                    .without_gates("alertmanager"))
        if not touched:  # the old release kept running: check it, no soak to sit through
            settings = settings.with_overrides(min_healthy=0.0)
        restore_failure = _apply_and_gate(ctx, previous, settings, leaving=failed,
                                          back=True, leaving_failed=True).failure
    except RollbackError as error:
        restore_failure = GateFailure("", "", error.one_line())
    except Exception as error:  # reported below as a restore that failed
        restore_failure = _unexpected(error)
    except KeyboardInterrupt:  # a second interrupt: stop at once, say where things stand
        ctx.store.update(n, status="interrupted", finished=now_iso(),
                         reason=f"{reason}; interrupted again while restoring revision {p}")
        ctx.journal.end(revision=n, outcome="unrestored", restores=p)
        return DeployResult(
            "unrestored",
            f"revision {n} failed: {reason}; restoring revision {p} was interrupted, so the "
            f"project is between revisions; run `docker compose rollback revert --to {p}`",
            revision=n, failure=failure, plan=plan)
    ok = restore_failure is None
    if restore_failure is not None:
        restore_failure = restore_failure.masked(ctx.secrets)
    ctx.store.update(n, status=status, reason=reason, finished=now_iso(),
                     restored_to=p if ok else None)
    # The journal says how it ended too: the next reader need not guess from the history.
    ctx.journal.end(revision=n, outcome="rolled_back" if ok else "unrestored", restores=p)
    if ok:
        return DeployResult("rolled_back",
                            f"revision {n} failed: {reason}; revision {p} restored and healthy",
                            revision=n, restored=p, failure=failure, plan=plan)
    assert restore_failure is not None
    return DeployResult(
        "unrestored",
        f"revision {n} failed: {reason}; restoring revision {p} failed too: "
        f"{restore_failure.summary()}; the project runs revision {p}'s containers in that "
        "state — check `docker compose ps` and the logs", revision=n, failure=failure,
        plan=plan)


def restore_after_watch(ctx: Context, *, failed: Revision, previous: Revision | None,
                        failure: GateFailure, overrides: Overrides,
                        commit: bool | None = None) -> DeployResult:
    """A deployed revision failed during its watch (the lock held): mark it failed and go
    back to ``previous`` the way a failed gate goes back, hooks and webhook included; the
    store committed to git as after a deploy (``commit``: the flag, else ``x-rollback.git``)."""
    n = failed.number
    settings = revision_settings(ctx, failed, overrides)
    ctx.journal.begin("watch", revision=n, restores=previous.number if previous else None)
    # Failed first, then the previous one current again: never two deployed at once.
    ctx.store.update(n, status="failed", reason=failure.summary(), finished=now_iso())
    if previous is None:
        ctx.journal.end(revision=n, outcome="unrestored")
        result = DeployResult(
            "unrestored", f"revision {n} failed: {failure.summary()}; there is no earlier good "
            "revision to restore, so its containers are left as they are for inspection",
            revision=n, failure=failure)
    else:
        ctx.store.promote(previous.number, finished=previous.finished)
        result = _restore(ctx, failed=failed, status="failed", failure=failure,
                          previous=previous, overrides=overrides, plan=(),
                          discard=sorted(failed.pins))
    result = replace(result, steps=tuple(ctx.steps))
    if commit_wanted(ctx.project, commit):
        from compose_rollback.gitstore import commit_decision

        result = replace(result, commit=commit_decision(
            project=ctx.project, store=ctx.store, number=n, progress=ctx.progress))
    _announce(ctx, settings, result, previous)
    return result


def watch_settings(ctx: Context, revision: Revision, overrides: Overrides) -> Settings:
    """The gates of a deployed revision, its variables' values masked in what it reports."""
    mask_secrets(ctx, ctx.store.overlay_data(revision))
    return revision_settings(ctx, revision, overrides)
