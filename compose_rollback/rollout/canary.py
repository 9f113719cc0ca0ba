"""Canary: a few new containers beside the old release first, then promote or abort.

``x-rollback.canary: {replicas: 1 | "25%", duration: 30s}``: that many containers of the new
revision start beside the old ones (which all keep serving) and are gated, their soak lasting
at least ``duration``; every container carries the revision label, so a Prometheus gate can
judge the canaries' own metrics. Failed: the canaries are killed and removed, the old
release never left. Passed: promoted, the rest of the service is replaced as its
``update_config`` says (start-first, or rolling in batches), the canaries kept.
"""

from __future__ import annotations

from dataclasses import replace

from compose_rollback.gates.container import GateFailure, ServiceLine
from compose_rollback.rollout import rolling, start_first
from compose_rollback.rollout.base import StepRun
from compose_rollback.settings import Settings, format_duration


def run(step: StepRun) -> GateFailure | None:
    ctx, plan = step.ctx, step.step
    name = plan.services[0]
    own = step.settings.for_service(name)
    assert own.canary is not None  # the plan makes canary steps only for these
    if plan.strays:
        ctx.progress(ServiceLine(name, f"removing {len(plan.strays)} container(s) left by a "
                                 "rollout that did not finish"))
        ctx.engine.remove_containers(list(plan.strays))
        step = replace(step, step=replace(plan, strays=()))
    total = plan.replicas + len(plan.keep)
    count = min(own.canary.count(total), plan.replicas)
    soak = max(own.min_healthy, own.canary.duration)
    ctx.progress(ServiceLine(name, f"canary: {count} new container(s) beside {len(plan.old)} "
                             f"running, judged for {format_duration(soak)}"))
    ctx.journal.write("canary", revision=step.revision, service=name, count=count)
    step.notes.canary = count
    judged = replace(step, settings=_with_soak(step.settings, name, soak))
    failure, canaries = rolling.batch(judged, set(plan.old) | set(plan.keep), count)
    if failure is not None:
        ctx.progress(ServiceLine(name, "canary aborted: the old release never left"))
        return failure
    ctx.progress(ServiceLine(name, f"canary passed: promoting revision {step.revision}"))
    step.notes.promoted = True
    promoted = replace(plan, order="start-first", keep=(*plan.keep, *canaries),
                       replicas=plan.replicas - count)
    rest = replace(step, step=promoted)
    if 0 < plan.update.parallelism < promoted.replicas:
        return rolling.run(replace(rest, step=replace(promoted, order="rolling")))
    return start_first.run(rest)


def _with_soak(settings: Settings, service: str, soak: float) -> Settings:
    own = replace(settings.for_service(service), min_healthy=soak)
    return replace(settings, services={**settings.services, service: own})
