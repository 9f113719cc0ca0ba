"""How each step of a rollout ended, for the result (``up --json``) and its text.

A strategy fills a step's ``StepNotes`` as it goes (how many canaries, which batch failed);
the orchestrator turns them into one ``StepReport`` per step of the plan, the steps an
earlier failure left undone included (``not_run``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compose_rollback.rollout.plan import Step

PASSED, FAILED, NOT_RUN = "passed", "failed", "not_run"


@dataclass
class StepNotes:
    """What a strategy learnt while it ran one step (mutable: filled as it goes)."""

    canary: int | None = None  # canary containers started
    promoted: bool = False  # the canary passed its gates
    batches: int = 0  # rolling: batches begun
    failed_batch: int | None = None
    replaced: int = 0  # new containers that failed within max_failure_ratio, started anew
    budget: int = 0  # failures tolerated: max_failure_ratio * replicas
    replicas: int = 0  # new containers the budget was counted on


@dataclass(frozen=True)
class StepReport:
    """One step of one revision's rollout and how it ended."""

    revision: int
    back: bool  # the way back (a restore or a revert)
    strategy: str  # stop-first | start-first | rolling | canary
    services: tuple[str, ...]
    new: int  # new containers the step was to start (0 for stop-first: Compose decides)
    beside: int  # old containers serving while it ran
    outcome: str  # passed | failed | not_run
    reason: str = ""
    canary: int | None = None
    canary_outcome: str | None = None  # promoted | aborted
    batch_size: int | None = None
    batches: int | None = None
    failed_batch: int | None = None
    tolerated: tuple[int, int, int] | None = None  # (replaced, budget, replicas): rolling

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision, "direction": "back" if self.back else "forward",
            "strategy": self.strategy, "services": list(self.services), "new": self.new,
            "beside": self.beside, "outcome": self.outcome, "reason": self.reason or None,
            "canary": None if self.canary is None else {
                "replicas": self.canary, "outcome": self.canary_outcome},
            "batches": None if self.batch_size is None else {
                "size": self.batch_size, "begun": self.batches,
                "failed": self.failed_batch},
            "tolerated": None if self.tolerated is None else dict(zip(
                ("replaced", "budget", "replicas"), self.tolerated, strict=True)),
        }

    def describe(self) -> str:
        """``web: canary 1 beside 2, aborted``: one line of the text result."""
        what = ", ".join(self.services)
        line = f"{what}: {self.strategy}"
        if self.canary is not None:
            line += f" ({self.canary} canary, {self.canary_outcome or 'not judged'})"
        if self.batch_size is not None:
            line += f" (batches of {self.batch_size}"
            line += f", batch {self.failed_batch} failed)" if self.failed_batch else ")"
        line = f"{line}: {self.outcome.replace('_', ' ')}"
        if self.tolerated is not None and self.tolerated[0]:
            replaced, budget, replicas = self.tolerated
            line += (f"; {what}: {replaced} failed replica{'s' if replaced != 1 else ''} "
                     f"replaced (budget {budget} of {replicas})")
        return line


def step_report(step: Step, *, revision: int, back: bool, outcome: str,
                notes: StepNotes | None = None, reason: str = "") -> StepReport:
    notes = notes or StepNotes()
    rolling = step.order == "rolling" or (
        step.order == "canary" and 0 < step.update.parallelism < step.replicas)
    canary_outcome = None
    if notes.canary is not None and outcome != NOT_RUN:
        canary_outcome = "promoted" if notes.promoted else "aborted"
    return StepReport(
        revision=revision, back=back, strategy=step.order, services=step.services,
        new=0 if step.order == "stop-first" else step.replicas, beside=len(step.old),
        outcome=outcome, reason=reason, canary=notes.canary, canary_outcome=canary_outcome,
        batch_size=step.update.parallelism if rolling else None,
        batches=notes.batches if rolling else None, failed_batch=notes.failed_batch,
        tolerated=(notes.replaced, notes.budget, notes.replicas) if rolling else None)
