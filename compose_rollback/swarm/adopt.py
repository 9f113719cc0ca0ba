"""``status`` and ``pin`` on Swarm: what the stack's services and tasks run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from compose_rollback.errors import MissingImage, NothingRunning
from compose_rollback.pinning import pin_one
from compose_rollback.pins import Pin

if TYPE_CHECKING:
    from compose_rollback.context import Context


def stack_status(ctx: Context, pins: Mapping[str, Pin]) -> list[dict[str, Any]]:
    """Per service (``commands.ServiceStatus``'s fields): desired and running tasks, the
    image each runs, and any drift."""
    from compose_rollback.rollout.swarm import read_stack

    services, tasks = read_stack(ctx.engine, ctx.project.name)
    report = []
    for name in sorted(set(pins) | set(services)):
        pin, service = pins.get(name), services.get(name)
        live = [t for t in tasks if t.service == name and t.desired == "running"]
        running = [t for t in live if t.state == "running"]
        drift = []
        if pin is None:
            drift.append("runs in the stack but is not in the current revision")
        elif service is None:
            drift.append("pinned but the stack has no such service")
        elif service.image != pin.image:
            drift.append(f"the Swarm service runs {service.image}, not the pinned image")
        if service is not None and service.replicas is not None \
                and len(running) != service.replicas:
            drift.append(f"{len(running)} of {service.replicas} tasks running")
        drift += [f"task {t.name} runs {t.image}, not the pinned image"
                  for t in running if pin is not None and t.image != pin.image]
        tasks_seen: list[dict[str, Any]] = [
            {"container": t.name, "task": t.id, "state": t.state, "health": None,
             "image_id": t.image, "image": t.image} for t in live]
        report.append({"service": name, "pinned": pin.image if pin else None,
                       "pinned_id": pin.image_id if pin else None, "running": tasks_seen,
                       "drift": drift,
                       "desired": service.replicas if service is not None else None})
    return report


def stack_pins(ctx: Context, model: Mapping[str, Any]) -> dict[str, Pin]:
    """Pins of what the stack's services run now (``pin`` adopting a running stack)."""
    from compose_rollback.rollout.swarm import read_stack

    project = ctx.project
    services, _ = read_stack(ctx.engine, project.name)
    wanted = sorted(s for s in model.get("services") or {} if s in services)
    if not wanted:
        raise NothingRunning(project.name)
    images = {s: services[s].image for s in wanted}
    infos = ctx.engine.inspect_images(list(images.values()))
    pins = {}
    for service in wanted:
        if images[service] not in infos:
            raise MissingImage(f"{images[service]} (service {service})",
                               fix=f"docker pull {images[service]}")
        ref = str(model["services"][service].get("image") or images[service].split("@")[0])
        pins[service] = pin_one(service, ref, infos[images[service]], project=project.name)
    return pins
