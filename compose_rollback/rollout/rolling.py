"""Rolling: a service's replicas replaced ``parallelism`` at a time, each batch gated.

Each batch is start-first (``k`` new containers beside the old, gated, then ``k`` old ones
retired) or stop-first (``k`` old ones stopped gracefully, then ``k`` new ones started and
gated), with ``delay`` between batches. A failed batch's new containers are killed at once.

``max_failure_ratio``: as Swarm counts failed tasks of the update against it, each new
container that fails its gate counts; while the failures so far are at most
``max_failure_ratio * replicas``, the failed container is killed and removed and its slot is
started again with the new revision, gated again (Swarm's orchestrator, too, restarts a failed
task with the new spec). So a step ends with every replica of the new revision proven (the
revision file still describes what runs), or over the budget. Then ``failure_action``:
``rollback`` and ``pause`` end the step (the orchestrator and the transaction take it from
there); ``continue`` keeps the failed batch's old containers and goes on with the next batch,
and the step ends failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
    budget = Budget.of(config.max_failure_ratio, plan.replicas)
    step.notes.budget, step.notes.replicas = budget.allowed, plan.replicas
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
            (discard if step.leaving_failed else _stop)(step, retiring)
            present -= set(retiring)
        failure, new = batch(step, present, starting, budget=budget)
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


@dataclass
class Budget:
    """Failed new containers tolerated in one step: ``max_failure_ratio * replicas``."""

    allowed: int
    failures: int = 0

    @classmethod
    def of(cls, ratio: float, replicas: int) -> Budget:
        # Swarm fails the update once failures / replicas > ratio: the floor is tolerated
        # (the small epsilon keeps 0.3 * 10 at 3 despite binary floating point).
        return cls(int(ratio * replicas + 1e-9))

    def take(self, count: int) -> bool:
        """Count ``count`` more failures; True while they stay within the budget."""
        self.failures += count
        return self.failures <= self.allowed


def batch(step: StepRun, present: set[str], count: int, *,
          budget: Budget | None = None) -> tuple[GateFailure | None, list[str]]:
    """Start ``count`` new containers beside ``present`` and gate them; kill them if they
    fail. Within ``budget``, a failed one is killed and its slot started anew, gated again."""
    if count == 0:
        return None, []
    new: list[str] = []
    try:
        while True:
            failure, new = _attempt(step, present, count)
            if failure is None:
                return None, new
            failed = _failed_ones(step, failure, new)
            if budget is None or not failed or not budget.take(len(failed)):
                discard(step, new)
                return failure, []
            _replace(step, failed, failure, budget)
    except BaseException:  # an interrupt included: whatever this batch started goes
        discard(step, new_containers(step, present))
        raise


def _attempt(step: StepRun, present: set[str], count: int
             ) -> tuple[GateFailure | None, list[str]]:
    """Bring the batch's new containers up to ``count`` (the ones that survived an earlier
    attempt stay) and gate them all: they are judged together, their soak starts again."""
    ctx, name = step.ctx, step.step.services[0]
    try:
        ctx.engine.up(ctx.project, overlay=step.overlay, started=step.compose_started,
                      services=[name], scale={name: len(present) + count}, recreate=False)
    except RollbackError as error:
        return GateFailure(name, "", f"docker compose up failed: {error.one_line()}"), \
            new_containers(step, present)
    new = new_containers(step, present)
    ctx.journal.write("gate", revision=step.revision, service=name, new=new)
    return wait_healthy(
        ctx.engine, project_name=ctx.project.name, services=[name], settings=step.settings,
        restarts_before=step.restarts, progress=ctx.progress, only=set(new)), new


def _failed_ones(step: StepRun, failure: GateFailure, new: list[str]) -> list[str]:
    """The new containers a failure is about: the one it names, else (a probe of the whole
    service, a timeout) every one of them. None when docker compose up itself failed."""
    if failure.reason.startswith("docker compose up failed"):
        return []
    if failure.container:
        named = [c.id for c in step.ctx.engine.containers(step.ctx.project.name)
                 if c.id in new and c.name == failure.container]
        if named:
            return named
    return list(new)


def _stop(step: StepRun, old: list[str]) -> None:
    step.ctx.engine.stop_containers(old)


def _replace(step: StepRun, failed: list[str], failure: GateFailure, budget: Budget) -> None:
    name = step.step.services[0]
    step.notes.replaced += len(failed)
    step.ctx.progress(ServiceLine(name, f"{failure.summary()}; tolerated "
                                  f"(failure {budget.failures} of {budget.allowed} allowed "
                                  "by max_failure_ratio): starting its slot again"))
    discard(step, failed)
