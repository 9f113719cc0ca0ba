"""Rolling: a service's replicas replaced ``parallelism`` at a time, each batch gated.

Each batch is start-first (``k`` new containers beside the old, gated, then ``k`` old ones
retired) or stop-first (``k`` old ones stopped gracefully, then ``k`` new ones started and
gated), with ``delay`` between batches. A failed batch's new containers are killed at once.
Then ``failure_action``: ``rollback`` and ``pause`` end the step (the orchestrator and the
transaction take it from there); ``continue`` keeps the failed batch's old containers and
goes on with the next batch, and the step ends failed.
"""

from __future__ import annotations

import time

from compose_rollback.errors import RollbackError
from compose_rollback.gates.container import GateFailure, ServiceLine, wait_healthy
from compose_rollback.rollout.base import StepRun
from compose_rollback.rollout.start_first import discard, new_containers, retire


def run(step: StepRun) -> GateFailure | None:
    ctx, plan = step.ctx, step.step
    name, config = plan.services[0], plan.update
    if plan.strays:
        ctx.progress(ServiceLine(name, f"removing {len(plan.strays)} container(s) left by a "
                                 "rollout that did not finish"))
        ctx.engine.remove_containers(list(plan.strays))
    waiting, present = list(plan.old), set(plan.old) | set(plan.keep)
    to_start, first = plan.replicas, None
    batch_number = 0
    while waiting or to_start > 0:
        if batch_number and config.delay > 0:
            time.sleep(config.delay)
        batch_number += 1
        step.notes.batches += 1
        retiring, waiting = waiting[:config.parallelism], waiting[config.parallelism:]
        starting = min(config.parallelism, to_start)
        to_start -= starting
        ctx.progress(ServiceLine(name, f"batch {batch_number}: {starting} new, {len(retiring)} "
                                 f"old ({config.order})"))
        ctx.journal.write("batch", revision=step.revision, service=name, batch=batch_number,
                          old=retiring)
        if config.order == "stop-first" and retiring:
            ctx.engine.stop_containers(retiring)
            present -= set(retiring)
        failure, new = batch(step, present, starting)
        if failure is None:
            present |= set(new)
            if config.order == "start-first" and retiring:
                retire(step, retiring)
                present -= set(retiring)
            continue
        first = first or failure
        step.notes.failed_batch = step.notes.failed_batch or step.notes.batches
        if config.failure_action != "continue":
            return failure
    return first


def batch(step: StepRun, present: set[str], count: int) -> tuple[GateFailure | None, list[str]]:
    """Start ``count`` new containers beside ``present`` and gate them; kill them if they fail."""
    ctx, name = step.ctx, step.step.services[0]
    if count == 0:
        return None, []
    new: list[str] = []
    try:
        try:
            ctx.engine.up(ctx.project, overlay=step.overlay, started=step.compose_started,
                          services=[name], scale={name: len(present) + count}, recreate=False)
        except RollbackError as error:
            new = new_containers(step, present)
            discard(step, new)
            return GateFailure(name, "", f"docker compose up failed: {error.one_line()}"), []
        new = new_containers(step, present)
        failure = wait_healthy(
            ctx.engine, project_name=ctx.project.name, services=[name], settings=step.settings,
            restarts_before=step.restarts, progress=ctx.progress, only=set(new))
    except BaseException:
        discard(step, new or new_containers(step, present))
        raise
    if failure is not None:
        discard(step, new)
        return failure, []
    return None, new
