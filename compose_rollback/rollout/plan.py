"""The plan of a rollout: which services change, in which order, and how.

Like Swarm's updater, a service is a set of slots (its replicas); only *dirty* ones — whose
container's config hash differs from the revision's — are touched. The plan is a list of
steps in ``depends_on`` order, each gated before the next starts:

- a **stop-first** step is one ``compose up`` of several services (Compose recreates what
  changed, in its own dependency order, and leaves the rest alone) — today's behaviour;
- a **start-first** step is one service whose new containers are started beside the running
  ones, gated, and only then the old ones drained and removed.

Pure: built from plain data, so the unit tests check it without an engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from compose_rollback.dockerdata import ContainerState
from compose_rollback.rollout.config import RolloutConfig, UpdateConfig
from compose_rollback.rollout.labels import CONFIG_HASH
from compose_rollback.settings import ServiceSettings


@dataclass(frozen=True)
class Step:
    """One step of the plan; ``services`` has one entry for a start-first step."""

    order: str  # stop-first | start-first
    services: tuple[str, ...]
    gated: tuple[str, ...]  # the services whose containers this step's gate judges
    old: tuple[str, ...] = ()  # start-first: the containers serving now (kept until proven)
    strays: tuple[str, ...] = ()  # containers of neither revision (a cut-off rollout's)
    replicas: int = 1  # new containers to start
    keep: tuple[str, ...] = ()  # containers of the revision already running, kept
    update: UpdateConfig = field(default_factory=UpdateConfig)


@dataclass(frozen=True)
class Plan:
    """The steps of a rollout, in the order they run."""

    steps: tuple[Step, ...]

    def describe(self) -> list[str]:
        lines = []
        for step in self.steps:
            if step.order != "stop-first":
                lines.append(f"{step.services[0]}: {step.order}, {step.replicas} new beside "
                             f"{len(step.old)} running")
            else:
                lines.append(f"stop-first: {', '.join(step.services)}")
        return lines


def dependency_order(services: Sequence[str], rollout: RolloutConfig) -> list[str]:
    """Services sorted so that each comes after what it depends on (then by name)."""
    placed: list[str] = []
    seen: set[str] = set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in seen or name in trail or name not in services:
            return  # a cycle is Compose's to reject; a missing dependency is not ours to order
        for dependency in rollout.of(name).depends_on:
            visit(dependency, (*trail, name))
        seen.add(name)
        placed.append(name)

    for name in sorted(services):
        visit(name, ())
    return placed


def build_plan(
    *, services: Sequence[str], gated: Sequence[str], hashes: Mapping[str, str],
    previous: Mapping[str, str], containers: Sequence[ContainerState], rollout: RolloutConfig,
    settings: Mapping[str, ServiceSettings], back: bool,
) -> Plan:
    """The steps that take the project from ``containers`` to the revision of ``hashes``.

    ``previous``: the config hashes of the revision that runs now (the one to keep serving
    until the new one is proven); empty when there is none.
    """
    steps: list[Step] = []
    group: list[str] = []

    def close_group() -> None:
        if group:
            steps.append(Step("stop-first", tuple(group),
                              tuple(s for s in group if s in gated)))
            group.clear()

    for name in dependency_order(services, rollout):
        mine = [c for c in containers if c.service == name and not c.oneoff]
        config = rollout.of(name).config(back=back)
        own = settings.get(name)
        canary = own is not None and own.canary is not None and not back  # never on the way back
        if canary:
            config = replace(config, order="start-first")  # a canary runs beside the old
        step = _start_first(name, mine, hashes.get(name, ""), previous.get(name),
                            rollout.of(name).replicas, config)
        if step is None or (own is not None and own.oneshot):
            group.append(name)
            continue
        close_group()
        steps.append(replace(step, order="canary") if canary and step.old else step)
    close_group()
    return Plan(tuple(steps))


def _start_first(name: str, mine: Sequence[ContainerState], expected: str,
                 previous: str | None, replicas: int, config: UpdateConfig) -> Step | None:
    """A step of its own for the service (start-first, or rolling in batches), or None when
    the stop-first group's plain ``up`` is what it needs (Compose's recreate asked for,
    nothing running to keep, or nothing to change)."""
    rolling = 0 < config.parallelism < replicas
    if (config.order != "start-first" and not rolling) or replicas == 0:
        return None
    matching = [c for c in mine if c.labels.get(CONFIG_HASH) == expected]
    others = [c for c in mine if c not in matching]
    running = [c for c in others if c.status == "running"]
    if previous not in (None, expected) and any(
            c.labels.get(CONFIG_HASH) == previous for c in running):
        old = [c for c in running if c.labels.get(CONFIG_HASH) == previous]
    elif any(c.status == "running" for c in matching) and config.order == "start-first":
        old = []  # the revision serves already: whatever else runs is left over
    else:
        old = running  # what serves now, whichever revision it came from
    # Running containers of the revision count towards its replicas (a rolling update that
    # stopped half-way, on its way back); anything else is left over and goes first.
    keep = [c for c in matching if c.status == "running"]
    strays = [c for c in mine if c not in old and c not in keep]
    missing = max(0, replicas - len(keep))
    if not old and not strays:
        return None  # nothing to keep serving: a plain up creates or leaves it
    if not old:
        return Step("start-first", (name,), (name,), strays=tuple(c.id for c in strays),
                    replicas=replicas, update=config)
    order = "rolling" if rolling else "start-first"
    return Step(order, (name,), (name,), old=tuple(c.id for c in old),
                strays=tuple(c.id for c in strays), replicas=missing,
                keep=tuple(c.id for c in keep),
                update=config)
