"""The orchestrator seam: who replaces the containers of a revision, and how.

``deploy`` (the transaction) asks an ``Orchestrator`` to roll a revision out and gets back an
``Outcome`` with an explicit terminal state; it never knows how containers are replaced.
``ComposeOrchestrator`` does it on plain Compose, one step of the plan at a time (each step
gated before the next); a Swarm orchestrator can stand beside it behind the same two calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from compose_rollback.gates.container import GateFailure
from compose_rollback.rollout import canary, rolling, start_first, stop_first
from compose_rollback.rollout.base import COMPLETED, FAILED, Interrupted, Outcome, StepRun
from compose_rollback.rollout.config import RolloutConfig
from compose_rollback.rollout.labels import REVISION_LABEL
from compose_rollback.rollout.plan import Plan, Step, build_plan
from compose_rollback.rollout.report import FAILED as STEP_FAILED
from compose_rollback.rollout.report import NOT_RUN, PASSED, step_report
from compose_rollback.settings import Settings

if TYPE_CHECKING:
    from compose_rollback.context import Context
    from compose_rollback.pins import Pin
    from compose_rollback.revisions import Revision

STRATEGIES = {"stop-first": stop_first.run, "start-first": start_first.run,
              "rolling": rolling.run, "canary": canary.run}


class Orchestrator(Protocol):
    def check(self, *, pins: Mapping[str, Pin], text: str) -> None: ...

    def roll_out(self, *, revision: Revision, leaving: Revision | None, settings: Settings,
                 back: bool, restarts: Mapping[str, int],
                 leaving_failed: bool = False) -> Outcome: ...

    def discard(self, *, revision: Revision, leaving: Revision,
                services: Sequence[str]) -> None: ...

    def what_runs(self) -> str: ...


class ComposeOrchestrator:
    """Rollouts on one engine with plain Compose."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def check(self, *, pins: Mapping[str, Pin], text: str) -> None:
        """Compose runs whatever this engine has: local images included."""
        del pins, text

    def roll_out(self, *, revision: Revision, leaving: Revision | None, settings: Settings,
                 back: bool, restarts: Mapping[str, int],
                 leaving_failed: bool = False) -> Outcome:
        rollout = settings.rollout or RolloutConfig()
        plan = self._plan(revision, leaving, settings, rollout, back=back)
        if len(plan.steps) > 1 or any(s.order != "stop-first" for s in plan.steps):
            for line in plan.describe():
                self.ctx.progress(f"plan: {line}")
        everything = sorted({s for step in plan.steps for s in step.services})
        failures: list[tuple[Step, GateFailure]] = []
        touched = False
        for index, step in enumerate(plan.steps):
            last = index == len(plan.steps) - 1
            run = StepRun(ctx=self.ctx, step=step, revision=revision.number,
                          overlay=self.ctx.store.path_of(revision),
                          settings=settings if last else _service_gates_only(settings),
                          restarts=restarts, all_services=everything,
                          leaving_failed=leaving_failed)
            try:
                failure = STRATEGIES[step.order](run)
            except KeyboardInterrupt as stop:
                # Not yet proven: the way back kills this step's new containers as it does a
                # failed gate's (start-first, rolling and canary killed theirs already).
                failure = GateFailure("", "", "interrupted by the user")
                self._report(step, revision, back=back, notes=run, failure=failure)
                touched = touched or step.order not in ("start-first", "canary")
                raise Interrupted(self._failed(revision, leaving, step, failure, "rollback",
                                               plan, touched)) from stop
            self._report(step, revision, back=back, notes=run, failure=failure)
            # A failed start-first or canary step discarded its new containers and left the
            # old ones as they were; any other step may have replaced running containers.
            touched = touched or failure is None or step.order not in ("start-first", "canary")
            if failure is None:
                continue
            action = rollout.of(failure.service).config(back=back).failure_action \
                if failure.service else "rollback"
            failures.append((step, failure))
            if action != "continue":
                for undone in plan.steps[index + 1:]:
                    self._report(undone, revision, back=back, notes=None, failure=None)
                return self._failed(revision, leaving, step, failure, action, plan, touched)
        if failures:
            step, failure = failures[0]
            return self._failed(revision, leaving, step, failure, "continue", plan, touched)
        return Outcome(COMPLETED, plan=plan)

    def discard(self, *, revision: Revision, leaving: Revision,
                services: Sequence[str]) -> None:
        """Kill the containers ``revision`` created for ``services`` (found by its revision
        label: the revision's, not the one of the revision being put back)."""
        if not services:
            return
        containers = self._recreated(revision, leaving, services)
        if containers:
            self.ctx.progress(f"killing {len(containers)} container(s) of the failed revision")
            self.ctx.engine.remove_containers(list(containers))

    def what_runs(self) -> str:
        """Which revision each service's containers come from: ``web: 2 of revision 4``."""
        counts: dict[tuple[str, str], int] = {}
        for c in self.ctx.engine.containers(self.ctx.project.name):
            if c.status == "running" and not c.oneoff:
                key = (c.service, c.labels.get(REVISION_LABEL, "?"))
                counts[key] = counts.get(key, 0) + 1
        return ", ".join(f"{s}: {n} of revision {r}" for (s, r), n in sorted(counts.items()))

    # -- internals --------------------------------------------------------------------------
    def _report(self, step: Step, revision: Revision, *, back: bool, notes: StepRun | None,
                failure: GateFailure | None) -> None:
        outcome = NOT_RUN if notes is None else PASSED if failure is None else STEP_FAILED
        self.ctx.steps.append(step_report(
            step, revision=revision.number, back=back, outcome=outcome,
            notes=notes.notes if notes is not None else None,
            reason=failure.masked(self.ctx.secrets).summary() if failure is not None else ""))

    def _plan(self, revision: Revision, leaving: Revision | None, settings: Settings,
              rollout: RolloutConfig, *, back: bool) -> Plan:
        services = sorted(revision.pins)
        if not any(rollout.of(s).own_step(back=back)
                   or (not back and settings.for_service(s).canary) for s in services):
            # All stop-first: one compose up, as Compose itself would; no hashes needed.
            return Plan((Step("stop-first", tuple(services), tuple(revision.services)),))
        hashes, previous = self._hashes(revision, leaving)
        return build_plan(services=services, gated=revision.services, hashes=hashes,
                          previous=previous,
                          containers=self.ctx.engine.containers(self.ctx.project.name),
                          rollout=rollout, settings=settings.services, back=back)

    def _hashes(self, revision: Revision, leaving: Revision | None
                ) -> tuple[dict[str, str], dict[str, str]]:
        engine, store, project = self.ctx.engine, self.ctx.store, self.ctx.project
        with ThreadPoolExecutor(max_workers=2) as pool:
            new = pool.submit(engine.config_hashes, project, overlay=store.path_of(revision))
            old = pool.submit(engine.config_hashes, project, overlay=store.path_of(leaving)) \
                if leaving is not None else None
            return new.result(), (old.result() if old is not None else {})

    def _failed(self, revision: Revision, leaving: Revision | None, step: Step,
                failure: GateFailure, action: str, plan: Plan, touched: bool) -> Outcome:
        # Which containers are the failed ones is worked out on the way back only: the
        # failure is reported first, without waiting for two compose calls.
        discard = step.services if step.order == "stop-first" and leaving is not None else ()
        return Outcome(FAILED, failure, action=action, discard=discard, plan=plan,
                       touched=touched)

    def _recreated(self, revision: Revision, leaving: Revision,
                   services: Sequence[str]) -> tuple[str, ...]:
        """Containers a failed stop-first step created: those carrying the revision label
        of ``revision``'s definition of their service, where it differs from the one of the
        revision being put back (unchanged services keep theirs, and their containers).
        Read from the two revision files, not from two ``compose config --hash`` calls: the
        way back starts that much sooner."""
        new, old = _revision_labels(self.ctx, revision), _revision_labels(self.ctx, leaving)
        return tuple(sorted(
            c.id for c in self.ctx.engine.containers(self.ctx.project.name)
            if c.service in services and not c.oneoff and c.service in new
            and c.labels.get(REVISION_LABEL) == new[c.service]
            and new[c.service] != old.get(c.service)))


def _revision_labels(ctx: Context, revision: Revision) -> dict[str, str]:
    """Service -> the revision label its containers get from ``revision``'s file (the
    revision in which the service's definition last changed)."""
    found: dict[str, str] = {}
    for name, definition in (ctx.store.overlay_data(revision).get("services") or {}).items():
        labels = definition.get("labels") if isinstance(definition, dict) else None
        if isinstance(labels, dict) and labels.get(REVISION_LABEL) is not None:
            found[str(name)] = str(labels[REVISION_LABEL])
    return found


def _service_gates_only(settings: Settings) -> Settings:
    """Project-wide probes judge the whole project: they run in the last step's gate."""
    return replace(settings, gates=tuple(g for g in settings.gates if g.service is not None))


def orchestrator_for(ctx: Context) -> Orchestrator:
    """The orchestrator of the project: ``--orchestrator``, else ``x-rollback.orchestrator``
    of the compose files, else Compose on one engine."""
    if ctx.orchestrator_name() == "swarm":
        from compose_rollback.rollout.swarm import SwarmOrchestrator

        return SwarmOrchestrator(ctx)
    return ComposeOrchestrator(ctx)
