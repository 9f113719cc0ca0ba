"""What every strategy module gets for one step of the plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from compose_rollback.gates.container import GateFailure
from compose_rollback.rollout.plan import Plan, Step
from compose_rollback.rollout.report import StepNotes
from compose_rollback.settings import Settings

if TYPE_CHECKING:
    from compose_rollback.context import Context

COMPLETED, FAILED = "completed", "failed"  # the terminal states of a rollout


@dataclass(frozen=True)
class Outcome:
    """How a rollout ended. ``action``: the failed service's ``failure_action``;
    ``discard``: services of the failed stop-first step, whose containers of the failed
    revision are to be killed (not stopped) before the way back."""

    state: str
    failure: GateFailure | None = None
    action: str = "rollback"
    discard: tuple[str, ...] = ()
    plan: Plan = field(default_factory=lambda: Plan(()))
    touched: bool = True  # False: no running container was stopped or replaced


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a step: still an interrupt to whoever catches one, with the
    rollout as it stood (the services whose new containers were not yet proven: to kill)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__()
        self.outcome = outcome


@dataclass(frozen=True)
class StepRun:
    """One step of a rollout as a strategy runs it, with what it needs and reports back."""

    ctx: Context
    step: Step
    revision: int
    overlay: Path
    settings: Settings
    restarts: Mapping[str, int]
    all_services: Sequence[str]
    notes: StepNotes = field(default_factory=StepNotes)  # what the strategy reports back
    #: The way back from a revision that failed its gates: its containers being replaced
    #: are killed, not drained and stopped (the good release is the one owed a grace).
    leaving_failed: bool = False

    def compose_started(self, pid: int) -> None:
        """Journal the compose process, so a cut-off operation's successor waits for it."""
        self.ctx.journal.write("compose", revision=self.revision, compose_pid=pid)
