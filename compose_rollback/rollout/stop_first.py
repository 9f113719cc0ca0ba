"""Stop-first: one ``compose up`` of the step's services, then their gate.

Compose recreates each changed container in place (the old one is stopped before the new one
runs) and leaves unchanged ones alone: Compose's own behaviour, and the default order.
"""

from __future__ import annotations

from compose_rollback.errors import RollbackError
from compose_rollback.gates.container import GateFailure, wait_healthy
from compose_rollback.rollout.base import StepRun


def run(step: StepRun) -> GateFailure | None:
    ctx, plan = step.ctx, step.step
    everything = set(plan.services) == set(step.all_services)
    try:
        ctx.engine.up(ctx.project, overlay=step.overlay, started=step.compose_started,
                      services=() if everything else plan.services)
    except RollbackError as error:
        return GateFailure("", "", f"docker compose up failed: {error.one_line()}")
    ctx.journal.write("gate", revision=step.revision)
    return wait_healthy(
        ctx.engine, project_name=ctx.project.name, services=list(plan.gated),
        settings=step.settings, restarts_before=step.restarts, progress=ctx.progress,
    )
