"""Building a revision: the project's models read from Compose, the services pinned and
written as an overlay, the revision recorded, and the settings that judge it.

``deploy`` (``up``, ``revert``, ``--dry-run``) and ``commands.pin`` build revisions with these;
the transaction that applies and gates one is ``deploy``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from compose_rollback.context import Author, Context, author
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.errors import MissingImage
from compose_rollback.interpolate import environment, settings_model
from compose_rollback.overlay import Header, pinned_service, render
from compose_rollback.overlay import top_level as kept_top_level
from compose_rollback.pinning import keep_alive, pin_images, providers
from compose_rollback.pins import Pin
from compose_rollback.reading import Reading
from compose_rollback.redact import redactor_for
from compose_rollback.revisions import Revision, checksum, revision_file
from compose_rollback.rollout.config import check_overlap, load_rollout, with_monitor
from compose_rollback.rollout.labels import REVISION_VARIABLE, labelled, without_label
from compose_rollback.selection import deployed_services
from compose_rollback.settings import Settings, load_settings


@dataclass(frozen=True)
class Change:
    """How one service differs between the current revision and the new one."""

    service: str
    before: str | None  # pinned image before (None: new service)
    after: str | None  # pinned image after (None: service removed)
    config_changed: bool


@dataclass(frozen=True)
class Overrides:
    """CLI flags that win over file settings."""

    timeout: float | None = None
    min_healthy: float | None = None

    def apply(self, settings: Settings) -> Settings:
        return settings.with_overrides(timeout=self.timeout, min_healthy=self.min_healthy)


def compose_revision(
    ctx: Context, *, model: Mapping[str, Any], snapshot: Mapping[str, Any],
    services: Sequence[str], build: bool, pull: str | None, current: Revision | None,
    dry_run: bool = False, number: int = 0,
) -> tuple[dict[str, Any], dict[str, Pin], list[Change], list[ImageInfo], dict[str, str]]:
    """Definitions and pins: the services deployed (named ones and their dependencies) anew,
    the others kept from the current revision; the images inspected for them; and, for a dry
    run (which builds and pulls nothing), the images it would build or pull first."""
    previous = ctx.store.overlay_data(current)["services"] if current else {}
    old_pins = current.pins if current else {}
    fresh = deployed_services(model, services)
    keep = [s for s in sorted(model["services"])
            if s not in fresh and s in previous and s in old_pins]
    left_out = sorted(set(model["services"]) - set(fresh) - set(keep))
    if left_out:  # as `compose up web` would not start them
        ctx.progress(f"not deployed (new, neither named nor a dependency): "
                     f"{', '.join(left_out)}; `up {' '.join(left_out)}` deploys them")
    unpinned = providers(model, fresh, ctx.progress)
    fresh = [s for s in fresh if s not in unpinned]
    pins, images, actions = pin_images(ctx.engine, ctx.project, model=model, services=fresh,
                                       build=build, pull=pull, dry_run=dry_run)
    definitions: dict[str, Any] = {
        s: labelled(pinned_service(snapshot["services"][s], image=pins[s].image,
                                   local=pins[s].local), previous=previous.get(s), number=number)
        for s in fresh
    }
    definitions.update({s: pinned_service(snapshot["services"][s], image=None, local=False)
                        for s in unpinned})
    for s in keep:
        definitions[s], pins[s] = previous[s], old_pins[s]
    changes = plan_changes(old_pins, pins, previous, definitions)
    return definitions, pins, changes, images, actions


def plan_changes(before: Mapping[str, Pin], after: Mapping[str, Pin],
                  old_defs: Mapping[str, Any], new_defs: Mapping[str, Any]) -> list[Change]:
    changes = []
    for service in sorted(set(before) | set(after)):
        b, a = before.get(service), after.get(service)
        changes.append(Change(service, b.image if b else None, a.image if a else None,
                              _config(old_defs.get(service)) != _config(new_defs.get(service))))
    return changes


def _config(definition: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in without_label(definition).items() if k != "image"}


def render_revision(ctx: Context, *, number: int, message: str, restores: int | None,
                    definitions: Mapping[str, Any], top_level: Mapping[str, Any],
                    who: Author | None = None) -> str:
    who = who or author(ctx.project)
    header = Header(revision=number, created=who.created, message=message, user=who.user,
                    host=who.host, git=who.git, restores=restores)
    path = ctx.project.relative(ctx.store.overlay_path(number))
    files = " ".join(f"-f {ctx.project.relative(f)}" for f in ctx.project.files)
    hint = f"docker compose {files} -f {path} up -d"
    return render(project=ctx.project.name, header=header, services=definitions,
                  top_level=kept_top_level(top_level), apply_hint=hint)


def record(ctx: Context, who: Author, *, number: int, kind: str, text: str,
            pins: Mapping[str, Pin], message: str, restores: int | None,
            gated: Sequence[str], inspected: Sequence[ImageInfo] = ()) -> Revision:
    revision = Revision(
        number=number, status="pending", kind=kind, created=who.created,
        file=revision_file(number), sha256=checksum(text), pins=dict(pins),
        message=" ".join(message.split()), user=who.user, host=who.host, git=who.git,
        restores=restores, services=tuple(gated),
    )
    ctx.store.add(revision, text)
    ctx.journal.write("recorded", revision=number)
    keep_alive(ctx.engine, pins, inspected=inspected)
    return revision


def check_images_present(ctx: Context, pins: Mapping[str, Pin]) -> list[ImageInfo]:
    """A revert must not depend on a registry: every pinned image must be here already."""
    found = ctx.engine.inspect_images([p.image_id for p in pins.values()])
    for pin in sorted(pins.values(), key=lambda p: p.service):
        if pin.image_id not in found:
            fix = (f"rebuild it (docker compose build {pin.service}) — note a rebuild makes a "
                   "new image id" if pin.local else f"docker pull {pin.image}")
            raise MissingImage(f"{pin.image} (service {pin.service})", fix=fix)
    return list(found.values())


def mask_secrets(ctx: Context, *models: Mapping[str, Any]) -> None:
    """Mask the values of the variables these (non-interpolated) models refer to in all the
    operation stores or sends: history, results, hooks, webhooks, progress."""
    ctx.secrets.add(redactor_for(models, environment(ctx.project)).values)


def read_models(ctx: Context, reading: Reading | None = None
                ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The interpolated model (images; in memory only) and the snapshot (what revisions keep),
    from ``reading`` when the CLI started it already, else read now (``reading.Reading``)."""
    return (reading or Reading(ctx.engine, ctx.project)).result()


def project_settings(ctx: Context, model: Mapping[str, Any], *,
                     revision: int | None = None) -> Settings:
    """Settings of a non-interpolated model, interpolated in memory from the environment,
    with the rollout's own (``deploy.update_config`` & co) checked before anything runs.

    With ``revision``, ``${COMPOSE_ROLLBACK_REVISION}`` in the settings is that number: the
    value of the revision label on the containers this deploy creates, so a gate's PromQL
    can select the new release (``{revision="${COMPOSE_ROLLBACK_REVISION}"}``)."""
    env = environment(ctx.project)
    if revision is not None:
        env = {**env, REVISION_VARIABLE: str(revision)}
    rollout = load_rollout(model, env)
    settings = load_settings(settings_model(model, env))
    check_overlap(rollout, sorted(rollout.services),
                  canaries=[n for n, s in settings.services.items() if s.canary])
    return with_monitor(replace(settings, rollout=rollout), model)


def revision_settings(ctx: Context, revision: Revision, overrides: Overrides, *,
                       revision_number: int | None = None) -> Settings:
    """A revision's own gate settings, interpolated now (its file keeps ``${VAR}`` as is)."""
    return overrides.apply(project_settings(ctx, ctx.store.overlay_data(revision),
                                            revision=revision_number))
