"""Image reference -> immutable pin, and the retention tags that keep pinned images alive.

- A registry image is pinned as ``repo:tag@sha256:…`` from its RepoDigests (no registry call).
- A local-only image is pinned by its image id, run with ``pull_policy: never``.
- Every pinned image gets a retention tag in its own repository
  (``repo:rollback-<project>-<id12>``): ``docker image prune`` keeps tagged images, a rebuild
  of the same tag cannot take the old image away, and the tag keeps the repository's digest
  reference alive, so a revert needs no registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from compose_rollback.dockerdata import ImageInfo, repository
from compose_rollback.errors import DockerFailed, UnpinnableImages
from compose_rollback.pins import Pin
from compose_rollback.project import Project

RETENTION_PREFIX = "rollback-"
_TAG_LIMIT = 128  # docker's longest tag
# A repository as docker names it: an optional registry host[:port], then lower-case path
# components (docker/distribution reference grammar). No tag, no digest, no leading dash.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*" \
        r"[A-Za-z0-9])?)*(?::[0-9]+)?/)?"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_HOST}{_COMPONENT}(?:/{_COMPONENT})*")


class ImageEngine(Protocol):
    def inspect_images(self, refs: Sequence[str]) -> dict[str, ImageInfo]: ...
    def build(self, project: Project, services: Sequence[str]) -> None: ...
    def pull(self, project: Project, services: Sequence[str], *, policy: str) -> None: ...
    def tag(self, source: str, target: str) -> None: ...


def image_ref(project: str, service: str, definition: Mapping[str, Any]) -> str:
    """The image a service runs; compose names a build-only image ``<project>-<service>``."""
    image = definition.get("image")
    return str(image) if image else f"{project}-{service}"


def providers(model: Mapping[str, Any], services: Sequence[str],
              progress: Callable[[str], None]) -> list[str]:
    """The services run by a provider plugin (``provider:``, no image): there is nothing to
    pin, so they are kept in the revision as they are, unpinned, and said so."""
    from compose_rollback.overlay import is_provider  # the YAML parser: not for read-only commands

    found = [s for s in services if is_provider(model["services"][s])]
    for service in found:
        kind = model["services"][service]["provider"].get("type", "?")
        progress(f"service {service} is run by provider {kind!r} and has no image: kept as "
                 "it is, unpinned (a revert restores its definition, not a version)")
    return found


def retention_tag(ref: str, *, project: str, image_id: str) -> str:
    hexid = image_id.split(":", 1)[-1][:12]
    tag = f"{RETENTION_PREFIX}{project}-{hexid}"[:_TAG_LIMIT]
    return f"{repository(ref)}:{tag}"


def is_retention_tag(ref: str, *, project: str) -> bool:
    """Whether ``ref`` is a retention tag this project makes (``repo:rollback-<project>-<id12>``,
    cut at docker's tag limit like ``retention_tag`` cuts it).

    Retention tags are read back from the committed history; only ours may ever be removed,
    never a tag such as ``alpine:latest`` or another project's.
    """
    repo, colon, tag = ref.rpartition(":")
    if not colon or not _REPOSITORY.fullmatch(repo):
        return False
    stem = f"{RETENTION_PREFIX}{project}-"
    if len(stem) + 12 <= _TAG_LIMIT:
        return tag.startswith(stem) and re.fullmatch(r"[0-9a-f]{12}", tag[len(stem):]) \
            is not None
    return len(tag) == _TAG_LIMIT and tag.startswith(stem[:_TAG_LIMIT]) \
        and re.fullmatch(r"[0-9a-f]*", tag[len(stem):]) is not None


def _names_its_image(ref: str, image_id: str) -> bool:
    """``repo:rollback-<any project>-<id12 of image_id>`` (or cut at docker's tag limit)."""
    repo, colon, tag = ref.rpartition(":")
    if not colon or not _REPOSITORY.fullmatch(repo) or not tag.startswith(RETENTION_PREFIX):
        return False
    return tag.endswith("-" + image_id.split(":", 1)[-1][:12]) or len(tag) == _TAG_LIMIT


def pin_one(service: str, ref: str, info: ImageInfo, *, project: str) -> Pin:
    """Pin one inspected image (a digest pin if a RepoDigest of the same repository exists)."""
    repo = repository(ref)
    keep = retention_tag(ref, project=project, image_id=info.id)
    if "@sha256:" in ref:
        return Pin(service, ref, ref, info.id, local=False, retention=keep)
    for digest_ref in info.repo_digests:
        if repository(digest_ref) == repo:
            digest = digest_ref.split("@", 1)[1]
            return Pin(service, ref, f"{ref}@{digest}", info.id, local=False, retention=keep)
    return Pin(service, ref, info.id, info.id, local=True, retention=keep)


def prepare_images(
    engine: ImageEngine, project: Project, *, model: Mapping[str, Any],
    services: Sequence[str], build: bool, pull: str | None,
) -> dict[str, ImageInfo]:
    """Build and pull as ``docker compose up`` would, then inspect every image in one call."""
    defs = model["services"]
    refs = {s: image_ref(project.name, s, defs[s]) for s in services}
    buildable = [s for s in services if defs[s].get("build")]
    if build and buildable:
        engine.build(project, buildable)
    problems: dict[str, str] = {}
    if pull in ("always", "missing"):
        problems.update(_pull(engine, project, [s for s in services if not defs[s].get("build")],
                              policy=pull))
    found = engine.inspect_images(list(refs.values()))
    missing = [s for s in services if refs[s] not in found and s not in problems]
    to_build = [s for s in missing if defs[s].get("build")]
    to_pull = [s for s in missing if not defs[s].get("build") and pull != "never"]
    if to_build:
        engine.build(project, to_build)
    problems.update(_pull(engine, project, to_pull, policy="missing"))
    if to_build or to_pull:
        found.update(engine.inspect_images([refs[s] for s in to_build + to_pull]))
    images = {s: found[refs[s]] for s in services if refs[s] in found}
    if problems:  # report every image that cannot be had, with what pinning finds too
        raise UnpinnableImages({**{s: f"image {refs[s]} is not available locally"
                                   for s in services if s not in images}, **problems})
    return images


def planned_images(
    engine: ImageEngine, project: Project, *, model: Mapping[str, Any],
    services: Sequence[str], build: bool, pull: str | None,
) -> tuple[dict[str, ImageInfo], dict[str, str]]:
    """What ``prepare_images`` would do, done only by looking (a dry run): the images it would
    pin as they are, and ``build`` or ``pull`` for each service whose image it would build or
    pull first. Nothing is built, pulled or tagged."""
    defs = model["services"]
    refs = {s: image_ref(project.name, s, defs[s]) for s in services}
    found = engine.inspect_images(list(refs.values()))
    actions: dict[str, str] = {}
    for s in services:
        present = refs[s] in found
        if defs[s].get("build"):
            if build or not present:
                actions[s] = "build"
        elif pull == "always" or (not present and pull != "never"):
            actions[s] = "pull"
    images = {s: found[refs[s]] for s in services if refs[s] in found and s not in actions}
    return images, actions


def _pull(engine: ImageEngine, project: Project, services: Sequence[str], *,
          policy: str) -> dict[str, str]:
    """Pull; the services whose image could not be pulled, with the registry's answer."""
    if not services:
        return {}
    try:
        engine.pull(project, services, policy=policy)
        return {}
    except DockerFailed as error:
        if len(services) == 1:
            return {services[0]: f"cannot be pulled: {error.detail}"}
    problems = {}
    for service in services:  # one call failed: find every image that cannot be pulled
        try:
            engine.pull(project, [service], policy=policy)
        except DockerFailed as error:
            problems[service] = f"cannot be pulled: {error.detail}"
    return problems


def pin_services(
    *, project: Project, model: Mapping[str, Any], services: Sequence[str],
    images: Mapping[str, ImageInfo],
) -> dict[str, Pin]:
    """Pin every listed service, or report every image that cannot be pinned at once."""
    pins: dict[str, Pin] = {}
    problems: dict[str, str] = {}
    for service in services:
        ref = image_ref(project.name, service, model["services"][service])
        info = images.get(service)
        if info is None:
            problems[service] = f"image {ref} is not available locally"
            continue
        pins[service] = pin_one(service, ref, info, project=project.name)
    if problems:
        raise UnpinnableImages(problems)
    return pins


def pin_images(
    engine: ImageEngine, project: Project, *, model: Mapping[str, Any],
    services: Sequence[str], build: bool, pull: str | None, dry_run: bool,
) -> tuple[dict[str, Pin], list[ImageInfo], dict[str, str]]:
    """Build, pull and pin the services' images: their pins, the images inspected, and (for a
    dry run, which only looks) ``build``/``pull`` per service whose image it would build or
    pull first; such a service's "pin" is its reference as written, known only afterwards."""
    actions: dict[str, str] = {}
    if dry_run:
        images, actions = planned_images(engine, project, model=model, services=services,
                                         build=build, pull=pull)
    else:
        images = prepare_images(engine, project, model=model, services=services, build=build,
                                pull=pull)
    pins = pin_services(project=project, model=model, images=images,
                        services=[s for s in services if s not in actions])
    for s in actions:
        ref = image_ref(project.name, s, model["services"][s])
        pins[s] = Pin(s, ref, ref, "", local=False, retention="")
    return pins, list(images.values()), actions


def keep_alive(engine: ImageEngine, pins: Mapping[str, Pin], *,
               inspected: Iterable[ImageInfo] = ()) -> None:
    """Create the retention tags that are missing: one ``tag`` per missing tag, so in steady
    state no tag call at all. Whether a tag exists is read from the images' own tags when the
    caller has just inspected them (``inspected``), else from one inspection for all."""
    # Pins may come from the committed history: never (re)point a tag that is not a
    # retention tag naming this very image (a hostile `alpine:latest` would move the user's).
    wanted = {pin.retention: pin.image_id for pin in pins.values()
              if _names_its_image(pin.retention, pin.image_id)}
    tags_of = {info.id: info.repo_tags for info in inspected}
    unknown = sorted(tag for tag, image_id in wanted.items() if image_id not in tags_of)
    present = engine.inspect_images(unknown) if unknown else {}
    for tag, image_id in sorted(wanted.items()):
        if image_id in tags_of:
            missing = tag not in tags_of[image_id]
        else:
            missing = tag not in present or present[tag].id != image_id
        if missing:
            engine.tag(image_id, tag)
