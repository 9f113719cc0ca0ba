"""Start-first (blue-green) for one service: new containers beside the old, then the switch.

1. ``compose up -d --no-deps --no-recreate --scale SVC=old+N SVC`` against the revision's
   overlay: Compose leaves the running containers alone and creates N new ones with the
   overlay's configuration (so a later plain ``up`` of the overlay has nothing to change);
   the new ones are told from the old by id.
2. The gate judges the new containers alone (container state, probes, soak).
3. Passed: each old container is drained (``pre_stop`` run inside it, then ``drain`` seconds
   for a proxy to stop sending it requests), stopped with its own stop signal and
   ``stop_grace_period``, and removed.
   Failed (or interrupted): the new containers are killed and removed at once; the old ones
   were never touched (same ids, never restarted).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from compose_rollback.errors import RollbackError
from compose_rollback.gates.container import GateFailure, ServiceLine, wait_healthy
from compose_rollback.rollout import stop_first
from compose_rollback.rollout.base import StepRun
from compose_rollback.settings import format_duration


def run(step: StepRun) -> GateFailure | None:
    ctx, plan = step.ctx, step.step
    name = plan.services[0]
    engine = ctx.engine
    if plan.strays:
        ctx.progress(ServiceLine(name, f"removing {len(plan.strays)} container(s) found beside "
                                 "the running ones, left by a rollout that did not finish"))
        engine.remove_containers(list(plan.strays))
    if not plan.old:  # nothing serving to keep: a plain up
        return stop_first.run(step)
    old = set(plan.old) | set(plan.keep)  # anything running now is not new
    ctx.progress(ServiceLine(name, f"starting {plan.replicas} new container(s) beside "
                             f"{len(plan.old)} running (start-first)"))
    ctx.journal.write("start-first", revision=step.revision, service=name, old=sorted(old))
    new: list[str] = []
    try:
        try:
            engine.up(ctx.project, overlay=step.overlay, started=step.compose_started,
                      services=[name], scale={name: len(old) + plan.replicas},
                      recreate=False)
        except RollbackError as error:
            new = new_containers(step, old)
            discard(step, new)
            return GateFailure(name, "", f"docker compose up failed: {error.one_line()}")
        new = new_containers(step, old)
        ctx.journal.write("gate", revision=step.revision, service=name, new=new)
        failure = wait_healthy(
            engine, project_name=ctx.project.name, services=[name], settings=step.settings,
            restarts_before=step.restarts, progress=ctx.progress,
            only={*new, *plan.keep},
        )
    except BaseException:  # an interrupt included: the unproven containers go, the old stay
        discard(step, new or new_containers(step, old))
        raise
    if failure is not None:
        discard(step, new, note="; the old ones kept serving")
        return failure
    retire(step, sorted(plan.old))
    return None


def new_containers(step: StepRun, old: set[str]) -> list[str]:
    name = step.step.services[0]
    return sorted(c.id for c in step.ctx.engine.containers(step.ctx.project.name)
                  if c.service == name and not c.oneoff and c.id not in old)


def discard(step: StepRun, new: list[str], *, note: str = "") -> None:
    """Kill and remove the new containers: no grace period for a release that failed."""
    if not new:
        return
    began = time.monotonic()
    step.ctx.engine.remove_containers(new)
    step.ctx.progress(ServiceLine(step.step.services[0], f"{len(new)} new container(s) killed "
                                  f"and removed in {time.monotonic() - began:.1f}s{note}"))


def retire(step: StepRun, old: list[str]) -> None:
    """Drain the old containers, then stop them gracefully and remove them (kill them, on
    the way back from a revision that failed: they are that revision's)."""
    ctx, name = step.ctx, step.step.services[0]
    if step.leaving_failed:
        ctx.journal.write("retire", revision=step.revision, service=name, old=old)
        discard(step, old, note=" (of the revision that failed)")
        return
    own = step.settings.for_service(name)
    if own.pre_stop:
        ctx.progress(ServiceLine(name, "running pre_stop in the old container(s)"))
        with ThreadPoolExecutor(max_workers=min(8, len(old))) as pool:
            list(pool.map(lambda c: ctx.engine.exec_in(c, own.pre_stop, timeout=own.timeout),
                          old))
    if own.drain > 0:
        ctx.progress(ServiceLine(name, f"new container(s) healthy; draining the old for "
                                 f"{format_duration(own.drain)}"))
        time.sleep(own.drain)
    ctx.journal.write("retire", revision=step.revision, service=name, old=old)
    ctx.progress(ServiceLine(name, f"stopping {len(old)} old container(s)"))
    ctx.engine.stop_containers(old)
